"""Served graph variants side by side on the dev suite: tokens per second, entity F1 per PII source, and recall or
false-positive rate per category source, at the bundle's shipped thresholds.

    python -m loadtest.variants [--bundle B] [--variants fp32,int8] [--max-per-source 150] [--threads 1]

Every variant scores the same dev texts (each source's dev part, the first --max-per-source of them; never trained
or selected on). A variant is worth serving when it keeps F1 and recall within 0.01 of fp32 and is faster. Prints a
Markdown table and, with --json, the full report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from detector import Detector, DetectorSettings
from detector.paths import default_bundle_path
from training.category_sources import category_sources
from training.devsuite import run_categories, run_pii
from training.pii_harvest import build_pii_sources


def _capped(sources: list, n: int) -> list:
    return [dataclasses.replace(s, dev=s.dev[:n]) for s in sources if s.dev]


def measure(bundle: Path, variant: str, threads: int, pii: list, cats: list) -> dict[str, object]:
    settings = DetectorSettings.from_env(backend="onnx", graph_variant=variant, num_threads=threads)
    det = Detector.load(bundle, settings)
    texts = [e.text for s in pii for e in s.dev] + [r.text for s in cats for r in s.dev]
    det.detect(texts[:8])
    tokens = sum(len(e.ids) for e in det.encode(texts))
    started = time.perf_counter()
    pii_report = run_pii(det, pii, with_peer=False)
    cat_report = run_categories(det, cats)
    seconds = time.perf_counter() - started
    f1 = {name: row["probeguard"].get("f1") for name, row in pii_report["sources"].items()}
    categories = {f"{c}/{name}": row.get("recall", row.get("fpr"))
                  for c, block in cat_report.items() for name, row in block["sources"].items()}  # fmt: skip
    return {"variant": variant, "tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 1),
            "f1": f1, "categories": categories}  # fmt: skip


def render(reports: list[dict]) -> str:
    head = "| | " + " | ".join(r["variant"] for r in reports) + " |"
    lines = [head, "|---" * (len(reports) + 1) + "|",
             "| tokens/s | " + " | ".join(str(r["tokens_per_s"]) for r in reports) + " |"]  # fmt: skip
    for name in reports[0]["f1"]:
        if reports[0]["f1"][name] is not None:
            lines.append(f"| F1 {name} | " + " | ".join(f"{r['f1'][name]:.3f}" for r in reports) + " |")
    for name in reports[0]["categories"]:
        what = "recall/FPR"
        lines.append(f"| {what} {name} | " + " | ".join(f"{r['categories'][name]:.3f}" for r in reports) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--variants", default="fp32,int8")
    p.add_argument("--max-per-source", type=int, default=150)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the full report here")
    args = p.parse_args()
    bundle = args.bundle or default_bundle_path()
    pii = _capped(build_pii_sources(seed=0), args.max_per_source)
    cats = _capped(category_sources(seed=0), args.max_per_source)
    reports = [measure(bundle, v.strip(), args.threads, pii, cats) for v in args.variants.split(",") if v.strip()]
    print(f"bundle {bundle}; {args.threads} thread(s); dev parts, first {args.max_per_source} texts per source\n")
    print(render(reports))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
