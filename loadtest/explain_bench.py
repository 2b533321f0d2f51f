"""What an explanation costs: one text at a time through the served ONNX graph, plain and with `explain=True`,
interleaved (plain, explain, plain again) so drift hits every arm alike; the two plain arms' difference is the noise
floor against which "explain off costs nothing" is read. Texts: the golden corpus (tests/data/golden_corpus.jsonl:
real and project-written texts, short to a ~1,000-token thread).

    python -m probeguard.loadtest.explain_bench [--bundle REF] [--threads 1] [--repeats 5]

Prints JSON: p50/p90 ms per arm, the added ms and its ratio to the plain p50, and the explained work per token in
the forward pass's own units (what service.batcher.EXPLAIN_WORK_PER_TOKEN counts for admission).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def run(bundle: str | None, threads: int, repeats: int) -> dict[str, object]:
    import torch

    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.paths import default_bundle_path

    torch.set_num_threads(threads)
    settings = DetectorSettings.from_env(num_threads=threads, backend="onnx")
    det = Detector.load(default_bundle_path(bundle, settings), settings)
    try:
        from tests.golden import corpus  # a checkout's tests package (with ../shared beside it)
    except ImportError:
        raise SystemExit("run from a checkout: the texts are the golden corpus of tests/data") from None
    texts = [text for _, text in corpus()]
    det.detect(texts[:4], explain=True)  # warm both paths
    times: dict[str, list[float]] = {"plain": [], "explain": [], "plain_again": []}
    tokens = 0
    for _ in range(repeats):
        for text in texts:
            for arm, explain in (("plain", False), ("explain", True), ("plain_again", False)):
                started = time.perf_counter()
                det.detect([text], explain=explain)
                times[arm].append((time.perf_counter() - started) * 1000)
            tokens += len(det.tokenizer.encode(text).ids)
    p50 = {k: float(np.median(v)) for k, v in times.items()}
    total = {k: float(np.sum(v)) for k, v in times.items()}
    plain = (total["plain"] + total["plain_again"]) / 2
    return {
        "bundle": f"{det.bundle.manifest.name} {det.bundle.manifest.version}",
        "backend": det.backend.name, "threads": threads, "texts": len(texts), "repeats": repeats,
        "p50_ms": {k: round(v, 2) for k, v in p50.items()},
        "p90_ms": {k: round(float(np.quantile(v, 0.9)), 2) for k, v in times.items()},
        "added_p50_ms": round(p50["explain"] - p50["plain"], 2),
        "explain_over_plain_p50": round(p50["explain"] / p50["plain"], 2),
        "plain_arms_differ_p50_ms": round(p50["plain_again"] - p50["plain"], 2),  # the noise floor
        # explain's extra time per token, in units of the plain path's time per token: the admission share
        "explain_work_per_token": round((total["explain"] - plain) / plain, 2),
        "machine": f"{platform.machine()} {platform.system()}, {platform.processor() or 'cpu'}",
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="default: the default bundle")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(json.dumps(run(args.bundle, args.threads, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
