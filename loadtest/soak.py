"""Overload soak (loopback only, bounded): start `probeguard serve`, drive it past capacity, watch memory, then check
that it recovers.

    python -m probeguard.loadtest.soak [--bundle B] [--rate 200 | --times-capacity 2] [--duration 60]

`--times-capacity X` first measures capacity (closed loop, 4 clients, 20 s, same mix) and offers X times it.
Prints one JSON object: status counts under overload (expect 200s and 429s with Retry-After, no 5xx, no unanswered
requests), accepted-request latency, server RSS sampled every second before, during and 10 s after the load (back
near the pre-load value means nothing is held), and the answer after the load stops.

`server` is the same load seen by the service's own histograms (`/metrics`, scraped before and after): the share of
accepted requests answered within 1 s and of queue waits within the 0.5 s budget, and the 429s by the bound they kept
(wait budget, answer deadline, queue memory). The client runs on the same box:
on 2 cores its own CPU share and the loopback add to every latency it measures, so the two can differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from probeguard.loadtest.loadgen import closed_loop, open_loop
from probeguard.loadtest.server import rss_mb, running_server

MIX = [("short", 0.6), ("medium", 0.3), ("long", 0.1)]


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


def counter_deltas(before: str, after: str, name: str, label: str) -> dict[str, float]:
    """Increase of each series of one labelled counter between two scrapes, by that label's value."""

    def values(metrics: str) -> dict[str, float]:
        return {sample.labels[label]: sample.value for family in text_string_to_metric_families(metrics)
                for sample in family.samples if sample.name == f"{name}_total" and label in sample.labels}  # fmt: skip

    b, a = values(before), values(after)
    return {k: a[k] - b.get(k, 0.0) for k in sorted(a)}


async def _scrape(base: str) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.get(f"{base}/metrics")).text


async def _soak(base: str, pid: int, rate: float | None, times: float, duration: float) -> dict[str, object]:
    capacity = None
    if rate is None:
        capacity = await closed_loop(f"{base}/v1/detect", 4, 20.0, 1_000_000, MIX)
        rate = max(1.0, times * float(capacity["throughput_rps"]))  # type: ignore[arg-type]
    await asyncio.sleep(3.0)
    before = rss_mb(pid)
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    scraped = await _scrape(base)
    sampler = asyncio.create_task(sample())
    report = await open_loop(f"{base}/v1/detect", rate, duration, 1_000_000, MIX)
    sampler.cancel()
    now = await _scrape(base)
    server = {"accepted": share_within(scraped, now, "probeguard_request_duration_seconds",
                                       {"route": "/v1/detect", "status": "200"}, 1.0),
              "queue_wait": share_within(scraped, now, "probeguard_queue_wait_seconds", {}, 0.5),
              "refusals": counter_deltas(scraped, now, "probeguard_refusals", "reason")}  # fmt: skip
    await asyncio.sleep(10.0)
    after = rss_mb(pid)
    return {"capacity": capacity, "offered_rps": round(rate, 2), "load": report, "server": server,
            "rss_mb": {"before": before, "max": max(samples), "end_of_load": samples[-1], "after_10s_idle": after,
                       "after_vs_before": round(after / before - 1, 3), "samples": samples}}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--rate", type=float, help="requests per second offered (default: --times-capacity)")
    p.add_argument("--times-capacity", type=float, default=2.0, help="offer this multiple of measured capacity")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of overload (bounded)")
    args = p.parse_args()
    env = {"PROBEGUARD_BUNDLE": str(args.bundle)} if args.bundle else {}
    with running_server(env) as (base, proc):
        result = asyncio.run(_soak(base, proc.pid, args.rate, args.times_capacity, args.duration))
        time.sleep(2)
        result["after"] = httpx.post(f"{base}/v1/detect", json={"text": "recovered?"}, timeout=30).status_code
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
