"""Overload soak (loopback only, bounded): start `probeguard serve`, drive it past capacity with a mix of sizes, watch
memory, then check that it recovers.

    python -m probeguard.loadtest.soak [--bundle B] [--rate R | --times-capacity 2] [--duration 180] [--retries 1]

Sizes: short (~26 tokens), medium (~137), long (~523, two windows) and document (~20k tokens, an e-mail thread),
60 / 28 / 10 / 2 % of requests (documents are then most of the work). `--times-capacity X` first measures the
service's capacity for this mix (each size alone, closed loop: 4 clients for a few seconds, one document) and offers
X times it in requests per second, open loop; a refused request is sent again after its Retry-After, once by default,
as a real caller would. Prints one JSON object: per size class the share of requests admitted on the first try and
at all, p50/p99 of accepted requests and how many were answered after the bound the service gave them; status counts
(expect 200s and 429s with Retry-After, no 5xx, nothing unanswered), the service's own view (`server`: refusals by
reason and admissions by size class between two `/metrics` scrapes), server RSS sampled every second before, during
and 10 s after the load, the load generator's own CPU (it shares the box), the answer after the load stops, and
`checks`: issue #35's bounds on these figures (a size class's share counts a request admitted on a retry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from probeguard.detector.cpu import int8_path
from probeguard.loadtest.loadgen import closed_loop, open_loop
from probeguard.loadtest.server import rss_mb, running_server

MIX = [("short", 0.6), ("medium", 0.28), ("long", 0.1), ("document", 0.02)]
# Seconds of closed-loop load per size when measuring capacity (a document: one request, however long it takes).
CAPACITY_SECONDS = {"short": 5.0, "medium": 5.0, "long": 8.0}


def _buckets(metrics: str, name: str, labels: dict[str, str]) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of one histogram series in Prometheus text."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            tags = sample.labels
            if sample.name == f"{name}_bucket" and all(tags.get(k) == v for k, v in labels.items()):
                out[float(tags["le"])] = sample.value
    return out


def share_within(before: str, after: str, name: str, labels: dict[str, str], le: float) -> dict[str, float]:
    """Observations of one histogram series between two scrapes, and the share of them at or below bucket `le`."""
    b, a = _buckets(before, name, labels), _buckets(after, name, labels)
    if le not in a:
        raise ValueError(f"{name} has no bucket le={le}")
    total = a.get(float("inf"), 0.0) - b.get(float("inf"), 0.0)
    within = a[le] - b.get(le, 0.0)
    return {"observations": total, f"share_le_{le:g}s": round(within / total, 4) if total else 1.0}


def counter_deltas(
    before: str, after: str, name: str, label: str, match: dict[str, str] | None = None
) -> dict[str, float]:
    """Increase of each series of one labelled counter between two scrapes, by that label's value (only series whose
    other labels equal `match`)."""

    def values(metrics: str) -> dict[str, float]:
        return {sample.labels[label]: sample.value for family in text_string_to_metric_families(metrics)
                for sample in family.samples if sample.name == f"{name}_total" and label in sample.labels
                and all(sample.labels.get(k) == v for k, v in (match or {}).items())}  # fmt: skip

    b, a = values(before), values(after)
    return {k: a[k] - b.get(k, 0.0) for k in sorted(a)}


async def _scrape(base: str) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.get(f"{base}/metrics")).text


async def measure_capacity(url: str) -> dict[str, object]:
    """Requests per second of the mix: each size alone at its best (closed loop), combined by the mix's shares."""
    per_size: dict[str, float] = {}
    for size, _ in MIX:
        if size == "document":
            report = await closed_loop(url, 1, 0.1, 1, [(size, 1.0)])
        else:
            report = await closed_loop(url, 4, CAPACITY_SECONDS[size], 1_000_000, [(size, 1.0)])
        per_size[size] = float(report["throughput_rps"])  # type: ignore[arg-type]
    seconds = sum(weight / per_size[size] for size, weight in MIX) / sum(w for _, w in MIX)
    return {"throughput_rps_by_size": per_size, "throughput_rps": round(1 / seconds, 3)}


def checks(result: dict[str, object], times: float | None) -> dict[str, object]:
    """Issue #35's bounds on one soak's figures (None where the soak was not run at a multiple of capacity)."""
    load, rss = result["load"], result["rss_mb"]
    admitted = load["admitted_with_retries_by_size"]  # type: ignore[index]
    p99 = load["p99_ms_by_size"]  # type: ignore[index]
    statuses = load["statuses"]  # type: ignore[index]
    return {
        "every_size_admitted_at_least_half_a_fair_share": None if times is None else all(
            admitted.get(size, 0.0) >= 0.5 / times for size, _ in MIX),
        "short_and_medium_p99_within_1s": all(p99.get(s, 0.0) <= 1000 for s in ("short", "medium")),
        "long_and_document_within_their_bounds": not any(
            load["over_bound_by_size"].get(s, 0) for s in ("long", "document")),  # type: ignore[index]
        "nothing_lost": load["unanswered"] == 0,  # type: ignore[index]
        "no_5xx": not any(int(code) >= 500 for code in statuses),
        "rss_back_within_5_percent": abs(rss["after_vs_before"]) <= 0.05,  # type: ignore[index]
        "first_request_after_is_200": result.get("after") == 200,
    }  # fmt: skip


async def _soak(
    base: str, pid: int, rate: float | None, times: float, duration: float, retries: int
) -> dict[str, object]:
    url = f"{base}/v1/detect"
    capacity = None
    if rate is None:
        capacity = await measure_capacity(url)
        rate = max(0.1, times * float(capacity["throughput_rps"]))  # type: ignore[arg-type]
    await asyncio.sleep(3.0)
    before = rss_mb(pid)
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    scraped = await _scrape(base)
    sampler = asyncio.create_task(sample())
    cpu, wall = time.process_time(), time.perf_counter()
    report = await open_loop(url, rate, duration, 1_000_000, MIX, retries)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    sampler.cancel()
    now = await _scrape(base)
    admitted = counter_deltas(scraped, now, "probeguard_admissions", "size_class", {"outcome": "admitted"})
    refused = counter_deltas(scraped, now, "probeguard_admissions", "size_class", {"outcome": "refused"})
    server = {"accepted": share_within(scraped, now, "probeguard_request_duration_seconds",
                                       {"route": "/v1/detect", "status": "200"}, 1.0),
              "refusals": counter_deltas(scraped, now, "probeguard_refusals", "reason"),
              "admitted_share_by_size": {k: round(v / (v + refused[k]), 4) for k, v in admitted.items()
                                         if v + refused[k]}}  # fmt: skip
    await asyncio.sleep(10.0)
    after = rss_mb(pid)
    return {"capacity": capacity, "offered_rps": round(rate, 3), "times_capacity": times if capacity else None,
            "load": report, "server": server,
            "load_generator": {"cpu_s": round(cpu, 2), "cores_used": round(cpu / wall, 3)},
            "rss_mb": {"before": before, "max": max(samples), "end_of_load": samples[-1], "after_10s_idle": after,
                       "after_vs_before": round(after / before - 1, 3), "samples": samples}}  # fmt: skip


def save(result: dict[str, object]) -> Path:
    """Keep one soak's JSON as reports/soak_<X>x.json and rewrite reports/BENCHMARKS.md with it (loadtest.bench)."""
    from probeguard.loadtest.bench import ROOT, render

    path = ROOT / "reports" / f"soak_{result['times_capacity']:g}x.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    render(ROOT / "reports" / "benchmarks.json")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--rate", type=float, help="requests per second offered (default: --times-capacity)")
    p.add_argument("--times-capacity", type=float, default=2.0, help="offer this multiple of measured capacity")
    p.add_argument("--duration", type=float, default=180.0, help="seconds of overload (bounded)")
    p.add_argument("--retries", type=int, default=1, help="times a refused request is sent again after Retry-After")
    p.add_argument("--write", action="store_true", help="save reports/soak_<X>x.json and update BENCHMARKS.md")
    args = p.parse_args()
    if args.write and args.rate:
        raise SystemExit("--write keeps soaks at a multiple of capacity: use --times-capacity, not --rate")
    env = {"PROBEGUARD_BUNDLE": str(args.bundle)} if args.bundle else {}
    result: dict[str, object] = {"date": time.strftime("%Y-%m-%d"),
                                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, {int8_path()}"}  # fmt: skip
    with running_server(env) as (base, proc):
        result |= asyncio.run(_soak(base, proc.pid, args.rate, args.times_capacity, args.duration, args.retries))
        time.sleep(2)
        result["after"] = httpx.post(f"{base}/v1/detect", json={"text": "recovered?"}, timeout=30).status_code
    result["checks"] = checks(result, None if args.rate else args.times_capacity)
    print(json.dumps(result, indent=2))
    if args.write:
        print(f"saved {save(result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
