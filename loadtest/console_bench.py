"""What the operator console costs: resident memory of `probeguard serve` with the console off and on (the full torch
host the layer trace runs on), and /v1/trace latency over HTTP against /v1/detect for the same texts (the golden
corpus, one request at a time), on the shipped bundle.

    python -m probeguard.loadtest.console_bench [--repeats 3]

Prints JSON: RSS per arm after warm-up, and p50/p90 ms of detect and trace per text.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import httpx
import numpy as np

from probeguard.loadtest.server import rss_mb, running_server


def _timed(client: httpx.Client, url: str, texts: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        for text in texts:
            started = time.perf_counter()
            r = client.post(url, json={"text": text})
            r.raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def run(repeats: int) -> dict[str, object]:
    try:
        from tests.golden import corpus  # a checkout's tests package (with ../shared beside it)
    except ImportError:
        raise SystemExit("run from a checkout: the texts are the golden corpus of tests/data") from None
    texts = [text for _, text in corpus()]
    result: dict[str, object] = {"machine": f"{platform.machine()} {platform.system()}", "texts": len(texts),
                                 "repeats": repeats, "threads": 1}  # fmt: skip
    with running_server({"PROBEGUARD_NUM_THREADS": "1"}) as (base, proc), httpx.Client(timeout=120) as client:
        client.post(f"{base}/v1/detect", json={"text": texts[0]}).raise_for_status()
        result["rss_mb_console_off"] = rss_mb(proc.pid)
    env = {"PROBEGUARD_NUM_THREADS": "1", "PROBEGUARD_CONSOLE": "true"}
    with running_server(env) as (base, proc), httpx.Client(timeout=120) as client:
        client.post(f"{base}/v1/trace", json={"text": texts[0]}).raise_for_status()
        detect = _timed(client, f"{base}/v1/detect", texts, repeats)
        trace = _timed(client, f"{base}/v1/trace", texts, repeats)
        result["rss_mb_console_on"] = rss_mb(proc.pid)
    for name, ms in (("detect", detect), ("trace", trace)):
        result[f"{name}_ms"] = {"p50": round(float(np.percentile(ms, 50)), 1),
                                "p90": round(float(np.percentile(ms, 90)), 1)}  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(run(args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
