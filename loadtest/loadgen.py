"""Load generator for the sidecar (loopback only): closed loop (fixed concurrency) or open loop (fixed arrival rate).

    python -m probeguard.loadtest.loadgen --url http://127.0.0.1:8000 --mode closed --concurrency 8 --duration 20
    python -m probeguard.loadtest.loadgen --mode open --rate 50 --duration 20 --mix short:0.7,medium:0.2,long:0.1

Prints one JSON object (p50/p90/p99/max latency, throughput, error and 429 rates); --out also writes it to a file.
Bounded: every run stops after --duration seconds (and --max-requests); it refuses any non-loopback target.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

SHORT = "Hi, I'm Anna Schmidt, please mail me at anna.schmidt@example-mail.de about my order."  # ~30 tokens
MEDIUM = ("Hello support, my name is Jonas Weber and I moved to Hauptstraße 12, 10115 Berlin. My new phone number is "
          "+49 30 1234567 and my card ending 4242 was charged twice for order 88-1203. ") * 2  # fmt: skip
LONG = (
    "Meeting notes: the team reviewed the quarterly roadmap, the migration to the new billing system and the "
    "support backlog. Maria Rossi (maria.rossi@example.it) owns the rollout; questions go to +39 06 1234 5678. "
) * 9  # ~512 tokens
TEXTS = {"short": SHORT, "medium": MEDIUM, "long": LONG}


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to send load to {host!r}: only loopback targets are allowed")


def parse_mix(spec: str) -> list[tuple[str, float]]:
    mix = []
    for part in spec.split(","):
        name, _, weight = part.partition(":")
        if name not in TEXTS:
            raise SystemExit(f"unknown text size {name!r}; use {sorted(TEXTS)}")
        mix.append((name, float(weight or 1)))
    return mix


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    retry_after: list[str] = field(default_factory=list)  # Retry-After of every 429, as sent
    by_size: dict[str, list[float]] = field(default_factory=dict)  # accepted latencies per text size
    sent_by_size: dict[str, int] = field(default_factory=dict)  # answered requests per text size

    def add(self, status: int | None, seconds: float, retry_after: str | None = None, size: str = "") -> None:
        if status is None:
            self.errors += 1
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if size:
            self.sent_by_size[size] = self.sent_by_size.get(size, 0) + 1
        if status == 429:
            self.retry_after.append(retry_after or "")
        if status == 200 and size:
            self.by_size.setdefault(size, []).append(seconds)
        if status == 200:
            self.latencies.append(seconds)

    def summary(self, wall: float) -> dict[str, object]:
        lat = sorted(self.latencies)
        total = sum(self.statuses.values()) + self.errors

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else float("nan")

        return {
            "requests": total, "ok": len(lat), "throughput_rps": round(len(lat) / wall, 2),
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else float("nan"),
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else float("nan"),
            "rate_429": round(self.statuses.get(429, 0) / max(total, 1), 4),
            "error_rate": round((total - len(lat)) / max(total, 1), 4), "statuses": self.statuses,
            "unanswered": self.errors,
            "retry_after_s": {v or "missing": self.retry_after.count(v) for v in sorted(set(self.retry_after))},
            "p99_ms_by_size": {k: round(sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] * 1000, 2)
                               for k, v in sorted(self.by_size.items())},
            "accepted_share_by_size": {k: round(len(self.by_size.get(k, [])) / n, 4)
                                       for k, n in sorted(self.sent_by_size.items())},
            "wall_s": round(wall, 2),
        }  # fmt: skip


async def _one(client: httpx.AsyncClient, url: str, size: str, result: Result) -> None:
    started = time.perf_counter()
    try:
        r = await client.post(url, json={"text": TEXTS[size]})
        result.add(r.status_code, time.perf_counter() - started, r.headers.get("retry-after"), size)
    except httpx.HTTPError:
        result.add(None, time.perf_counter() - started)


def _picker(mix: list[tuple[str, float]]):
    import random

    rng = random.Random(0)
    names, weights = [n for n, _ in mix], [w for _, w in mix]
    return lambda: rng.choices(names, weights)[0]


async def closed_loop(url: str, concurrency: int, duration: float, max_requests: int, mix) -> dict[str, object]:
    result, pick, sent = Result(), _picker(mix), 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                await _one(client, url, pick(), result)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"mode": "closed", "concurrency": concurrency, **result.summary(time.perf_counter() - started)}


async def open_loop(url: str, rate: float, duration: float, max_requests: int, mix) -> dict[str, object]:
    result, pick = Result(), _picker(mix)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=512)) as client:
        started, tasks = time.perf_counter(), []
        for i in range(min(int(rate * duration), max_requests)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(_one(client, url, pick(), result)))
        await asyncio.gather(*tasks)
        return {"mode": "open", "rate": rate, **result.summary(time.perf_counter() - started)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--mode", choices=("closed", "open"), default="closed")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (open loop)")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--mix", default="short:0.7,medium:0.2,long:0.1")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args()
    check_loopback(args.url)
    url, mix = args.url.rstrip("/") + "/v1/detect", parse_mix(args.mix)
    if args.mode == "closed":
        report = asyncio.run(closed_loop(url, args.concurrency, args.duration, args.max_requests, mix))
    else:
        report = asyncio.run(open_loop(url, args.rate, args.duration, args.max_requests, mix))
    text = json.dumps({"mix": args.mix, **report}, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
