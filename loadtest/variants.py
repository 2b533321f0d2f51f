"""fp32 vs int8 ONNX graphs of a bundle on this CPU: entity F1 on held-out synthetic texts and texts per second.

    python -m loadtest.variants [--bundle B] [--n 300] [--threads 1]

Decides whether int8 is worth serving: it must keep accuracy (F1 within a point) to be worth its speed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from detector import Detector, DetectorSettings
from detector.paths import default_bundle_path
from training.evaluate import entity_scores, span_triples
from training.synth import generate_examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    examples = generate_examples(args.n, seed=12345, template_split="heldout")
    texts = [e.text for e in examples]
    gold = span_triples(examples)
    report: dict[str, object] = {"texts": len(texts), "threads": args.threads}
    spans_by_variant = {}
    for variant in ("fp32", "int8"):
        settings = DetectorSettings.from_env(backend="onnx", graph_variant=variant, num_threads=args.threads)
        det = Detector.load(args.bundle or default_bundle_path(), settings)
        det.detect(texts[:16])
        started = time.perf_counter()
        results = det.detect(texts)
        seconds = time.perf_counter() - started
        pred = span_triples(results)
        spans_by_variant[variant] = pred
        scores = entity_scores(gold, pred)
        report[variant] = {"entity_f1": scores["micro"]["f1"], "overlap_f1": scores["micro_overlap"]["f1"],
                           "texts_per_s": round(len(texts) / seconds, 1)}  # fmt: skip
    same = sum(a == b for a, b in zip(spans_by_variant["fp32"], spans_by_variant["int8"], strict=True))
    report["int8_identical_spans_fraction"] = round(same / len(texts), 4)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
