"""Overload soak (loopback only, bounded): start `probeguard serve`, drive it past capacity, watch memory, then check
that it recovers.

    python -m loadtest.soak [--bundle B] [--rate 200] [--duration 60]

Prints one JSON object: status counts under overload (expect 200s and 429s with Retry-After, no 5xx, no dropped
requests), server RSS sampled every second (flat means no leak), and the answer after the load stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from loadtest.loadgen import open_loop
from loadtest.server import rss_mb, running_server


async def _soak(base: str, pid: int, rate: float, duration: float) -> dict[str, object]:
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    report = await open_loop(f"{base}/v1/detect", rate, duration, 1_000_000,
                             [("short", 0.6), ("medium", 0.3), ("long", 0.1)])  # fmt: skip
    sampler.cancel()
    return {"load": report, "rss_mb": {"first": samples[0], "max": max(samples), "last": samples[-1],
                                       "samples": samples}}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second offered (above capacity)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of overload (bounded)")
    args = p.parse_args()
    env = {"PROBEGUARD_BUNDLE": str(args.bundle)} if args.bundle else {}
    with running_server(env) as (base, proc):
        result = asyncio.run(_soak(base, proc.pid, args.rate, args.duration))
        time.sleep(2)
        result["after"] = httpx.post(f"{base}/v1/detect", json={"text": "recovered?"}, timeout=30).status_code
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
