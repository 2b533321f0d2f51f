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

SHORT = "Hi, I'm Anna Schmidt, please mail me at anna.schmidt@example-mail.de about my order."  # ~26 tokens
MEDIUM = ("Hello support, my name is Jonas Weber and I moved to Hauptstraße 12, 10115 Berlin. My new phone number is "
          "+49 30 1234567 and my card ending 4242 was charged twice for order 88-1203. ") * 2  # fmt: skip
LONG = (
    "Meeting notes: the team reviewed the quarterly roadmap, the migration to the new billing system and the "
    "support backlog. Maria Rossi (maria.rossi@example.it) owns the rollout; questions go to +39 06 1234 5678. "
) * 9  # ~512 tokens
_PEOPLE = (("Maria Rossi", "maria.rossi@example.it", "+39 06 1234 5678"),
           ("Jonas Weber", "jonas.weber@example-mail.de", "+49 30 1234567"),
           ("Aiko Tanaka", "a.tanaka@example.jp", "+81 3 1234 5678"),
           ("Liam O'Brien", "liam.obrien@example.ie", "+353 1 234 5678"))  # fmt: skip


def _document(messages: int = 142) -> str:
    """A long e-mail thread (~20k tokens, under the default 100,000-character limit): what a retrieved page, a
    pasted thread or a tool output looks like to the sidecar, with personal data throughout."""
    parts = []
    for i in range(messages):
        name, mail, phone = _PEOPLE[i % len(_PEOPLE)]
        other = _PEOPLE[(i + 1) % len(_PEOPLE)][0]
        parts.append(
            f"From: {name} <{mail}>\nSent: {1 + i % 28} March 2026 {8 + i % 10}:{i % 60:02d}\nSubject: Re: rollout "
            f"plan, ticket {4100 + i}\n\nHi {other.split()[0]}, thanks for the update on ticket {4100 + i}. The "
            f"migration of batch {i} finished overnight; {3 + i % 7} accounts still show the old invoice address and "
            f"need a manual fix before Friday. Customer {1000 + 37 * i} asked for a callback on {phone}. Please "
            f"keep the support backlog under review and tell me if the billing export fails again.\nBest, {name}\n\n"
        )
    return "".join(parts)


DOCUMENT = _document()
TEXTS = {"short": SHORT, "medium": MEDIUM, "long": LONG, "document": DOCUMENT}
CLIENT_TIMEOUT_S = 300.0  # a 20k-token document's bound under load is ~160 s on one CPU thread


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
    sent_by_size: dict[str, int] = field(default_factory=dict)  # answered attempts per text size
    first_by_size: dict[str, list[bool]] = field(default_factory=dict)  # first attempts: admitted?
    final_by_size: dict[str, list[bool]] = field(default_factory=dict)  # requests, retries included: admitted?
    over_bound: dict[str, int] = field(default_factory=dict)  # accepted, answered after the bound it was given

    def add(self, status: int | None, seconds: float, retry_after: str | None = None, size: str = "",
            bound_s: float | None = None) -> None:  # fmt: skip
        """One attempt's answer (None: no answer)."""
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
            if bound_s is not None and seconds > bound_s:
                self.over_bound[size] = self.over_bound.get(size, 0) + 1
        if status == 200:
            self.latencies.append(seconds)

    def outcome(self, size: str, first: bool, final: bool) -> None:
        """One request's outcome: admitted on its first attempt, admitted at all (after Retry-After retries)."""
        self.first_by_size.setdefault(size, []).append(first)
        self.final_by_size.setdefault(size, []).append(final)

    def summary(self, wall: float) -> dict[str, object]:
        lat = sorted(self.latencies)
        total = sum(self.statuses.values()) + self.errors

        def pct(values: list[float], p: float) -> float:
            v = sorted(values)
            return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 2) if v else float("nan")

        def share(flags: dict[str, list[bool]]) -> dict[str, float]:
            return {k: round(sum(v) / len(v), 4) for k, v in sorted(flags.items()) if v}

        return {
            "requests": total, "ok": len(lat), "throughput_rps": round(len(lat) / wall, 2),
            "p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "p99_ms": pct(lat, 0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else float("nan"),
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else float("nan"),
            "rate_429": round(self.statuses.get(429, 0) / max(total, 1), 4),
            "error_rate": round((total - len(lat)) / max(total, 1), 4), "statuses": self.statuses,
            "unanswered": self.errors,
            "retry_after_s": {v or "missing": self.retry_after.count(v) for v in sorted(set(self.retry_after))},
            "p50_ms_by_size": {k: pct(v, 0.5) for k, v in sorted(self.by_size.items())},
            "p99_ms_by_size": {k: pct(v, 0.99) for k, v in sorted(self.by_size.items())},
            "accepted_share_by_size": {k: round(len(self.by_size.get(k, [])) / n, 4)
                                       for k, n in sorted(self.sent_by_size.items())},
            "requests_by_size": {k: len(v) for k, v in sorted(self.first_by_size.items())},
            "admitted_first_try_by_size": share(self.first_by_size),
            "admitted_with_retries_by_size": share(self.final_by_size),
            "over_bound_by_size": {k: self.over_bound.get(k, 0) for k in sorted(self.by_size)},
            "wall_s": round(wall, 2),
        }  # fmt: skip


async def _attempt(client: httpx.AsyncClient, url: str, size: str, result: Result) -> tuple[int | None, float]:
    """One POST; (status, Retry-After seconds or 0)."""
    started = time.perf_counter()
    try:
        r = await client.post(url, json={"text": TEXTS[size]})
    except httpx.HTTPError:
        result.add(None, time.perf_counter() - started)
        return None, 0.0
    bound = r.json()["timing_ms"].get("answer_bound") if r.status_code == 200 else None
    result.add(r.status_code, time.perf_counter() - started, r.headers.get("retry-after"), size,
               bound / 1000 + 0.05 if bound is not None else None)  # fmt: skip  # 50 ms: HTTP and the loopback
    return r.status_code, float(r.headers.get("retry-after", 0) or 0)


async def _one(client: httpx.AsyncClient, url: str, size: str, result: Result, retries: int = 0) -> float:
    """One request, sent again after each 429's Retry-After (as a real caller does) up to `retries` times. Returns
    the last Retry-After (0 when admitted)."""
    status, retry = await _attempt(client, url, size, result)
    first = status == 200
    for _ in range(retries):
        if status != 429:
            break
        await asyncio.sleep(retry)
        status, retry = await _attempt(client, url, size, result)
    result.outcome(size, first, status == 200)
    return retry if status == 429 else 0.0


def _picker(mix: list[tuple[str, float]]):
    import random

    rng = random.Random(0)
    names, weights = [n for n, _ in mix], [w for _, w in mix]
    return lambda: rng.choices(names, weights)[0]


async def closed_loop(
    url: str, concurrency: int, duration: float, max_requests: int, mix, honour_retry_after: bool = False
) -> dict[str, object]:
    """`concurrency` clients, each sending its next request when the last is answered; with `honour_retry_after`, a
    client refused with 429 waits its Retry-After first (as a real caller does) instead of retrying at once."""
    result, pick, sent = Result(), _picker(mix), 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as client:

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                retry = await _one(client, url, pick(), result)
                if honour_retry_after and retry:
                    await asyncio.sleep(min(retry, max(0.0, deadline - time.perf_counter())))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"mode": "closed", "concurrency": concurrency, "honour_retry_after": honour_retry_after,
                **result.summary(time.perf_counter() - started)}  # fmt: skip


async def open_loop(
    url: str, rate: float, duration: float, max_requests: int, mix, retries: int = 0
) -> dict[str, object]:
    """Requests arrive at `rate` per second for `duration` seconds whatever the answers; a refused request is sent
    again after its Retry-After up to `retries` times (a real caller's retry)."""
    result, pick = Result(), _picker(mix)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=httpx.Limits(max_connections=1024)) as client:
        started, tasks = time.perf_counter(), []
        for i in range(min(int(rate * duration), max_requests)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(_one(client, url, pick(), result, retries)))
        await asyncio.gather(*tasks)
        return {"mode": "open", "rate": rate, "retries": retries, **result.summary(time.perf_counter() - started)}


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
