"""Groundwork for streaming (#34): the truncated host's key/value state per stream, and what a reply streamed in small
deltas costs with that cache against rescoring the prefix at every delta. Torch host of the bundle, no heads.

    python -m probeguard.loadtest.stream_state [--bundle B] [--threads 1] [--reply 1000] [--delta 10]

Prints one JSON object: the cache's bytes after 512, 2,048 and 8,192 tokens of one text (Gemma 3's sliding-window
blocks keep their window, the global ones every token); for a `--reply`-token text in `--delta`-token deltas, total
seconds and p50 / p99 per delta with the cache, rescoring the whole prefix at each delta, and one pass over the whole
reply. Text: the soak's document (loadgen.DOCUMENT), cut to length.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.paths import default_bundle_path
from probeguard.detector.truncate import TruncatedHost
from probeguard.loadtest.loadgen import DOCUMENT


def _ms(seconds: list[float]) -> dict[str, float]:
    a = np.array(seconds) * 1000
    return {"total_s": round(float(a.sum()) / 1000, 3), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2)}  # fmt: skip


def state_bytes(host: TruncatedHost, ids: torch.Tensor, marks: tuple[int, ...], chunk: int = 512) -> dict[str, int]:
    """Cache bytes after each of `marks` tokens, the text fed `chunk` tokens at a time."""
    out, cache, at = {}, None, 0
    for mark in marks:
        while at < mark:
            _, cache = host.forward_cached(ids[:, at : min(at + chunk, mark)], cache)
            at = min(at + chunk, mark)
        out[str(mark)] = cache.nbytes() if cache is not None else 0
    return out


def delta_costs(host: TruncatedHost, ids: torch.Tensor, delta: int) -> dict[str, object]:
    cached, rescored, cache = [], [], None
    for end in range(delta, ids.shape[1] + 1, delta):
        started = time.perf_counter()
        _, cache = host.forward_cached(ids[:, end - delta : end], cache)
        cached.append(time.perf_counter() - started)
        started = time.perf_counter()
        host(ids[:, :end], torch.ones(1, end, dtype=torch.long))
        rescored.append(time.perf_counter() - started)
    started = time.perf_counter()
    host(ids, torch.ones_like(ids))
    once = time.perf_counter() - started
    return {"deltas": len(cached), "cached": _ms(cached), "rescore_prefix": _ms(rescored), "one_pass_s": round(once, 3),
            "cached_over_one_pass": round(sum(cached) / once, 2)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reply", type=int, default=1000)
    p.add_argument("--delta", type=int, default=10)
    args = p.parse_args()
    det = Detector.load(args.bundle or default_bundle_path(),
                        DetectorSettings.from_env(backend="torch", num_threads=args.threads))  # fmt: skip
    host = det.backend.model.host  # type: ignore[attr-defined]
    ids = torch.from_numpy(np.asarray(det.encode([DOCUMENT])[0].ids, dtype=np.int64)).unsqueeze(0)
    with torch.no_grad():
        report = {"machine": f"{platform.machine()}, {args.threads} thread(s)", "layers": list(host.layers),
                  "cache_bytes": state_bytes(host, ids, (512, 2048, 8192)),
                  "reply": delta_costs(host, ids[:, : args.reply], args.delta)}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
