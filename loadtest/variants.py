"""Served variants side by side on the dev suite: tokens per second, entity F1 per PII source, and recall or
false-positive rate per category source, each bundle at its shipped thresholds and on the graph its heads were
trained on (fp32 bundle on the fp32 graph, int8 bundle on the int8 graph).

    python -m probeguard.loadtest.variants [--serve PATH[:VARIANT] ...] [--max-per-source 150] [--threads 1] [--json F]

Default: the newest fp32-trained bundle (the reference), the default bundle, the newest int8-trained one (each
once). Every entry scores the same dev texts (each source's dev part, the first --max-per-source of them; never
trained or selected on). The first entry is the reference: a variant is worth serving when it keeps every F1 and
recall within 0.01 of it (and every look-alike FPR no more than 0.01 above it) and is faster. Prints a Markdown
table and the verdict, with a paired bootstrap interval per source (the same texts resampled for both bundles) that
says whether the dev part is large enough to resolve that bound at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.bundle import load_bundle
from probeguard.detector.cpu import int8_path
from probeguard.detector.export import serving_variant
from probeguard.detector.paths import default_bundle_path, shipped_bundles
from probeguard.training.category_sources import category_sources
from probeguard.training.devsuite import run_categories, run_pii
from probeguard.training.pii_harvest import build_pii_sources

BOUND = 0.01  # the accuracy bound: F1 and recall within 0.01 of the fp32 reference
# What the paired intervals leave out (README, "The attention head's own seed is as large as the int8 gap").
FIT_NOISE = ("texts resampled, each bundle's fits held fixed: refitting the fp32 unsafe head with another seed moved a "
             "source by up to 0.18")  # fmt: skip


def _capped(sources: list, n: int) -> list:
    return [dataclasses.replace(s, dev=s.dev[:n]) for s in sources if s.dev]


def default_entries() -> list[str]:
    """The reference (the newest shipped bundle trained on fp32 activations), then the default bundle if it is
    another one, then the newest bundle trained on another arithmetic if neither of those is it."""
    bundles = shipped_bundles()
    fp32 = [b for b in bundles if load_bundle(b).manifest.host.activations == "fp32"]
    other = [b for b in bundles if b not in fp32]
    entries: list[Path] = []
    for path in [*fp32[-1:], default_bundle_path(), *other[-1:]]:
        if path.resolve() not in [e.resolve() for e in entries]:
            entries.append(path)
    return [str(e) for e in entries]


def measure(entry: str, threads: int, pii: list, cats: list) -> dict[str, object]:
    path, _, variant = entry.partition(":")
    settings = DetectorSettings.from_env(backend="onnx", graph_variant=variant, num_threads=threads)
    det = Detector.load(Path(path), settings)
    texts = [e.text for s in pii for e in s.dev] + [r.text for s in cats for r in s.dev]
    det.detect(texts[:8])
    tokens = sum(len(e.ids) for e in det.encode(texts))
    started = time.perf_counter()
    outcomes: dict[str, np.ndarray] = {}
    pii_report = run_pii(det, pii, with_peer=False, outcomes=outcomes)
    cat_report = run_categories(det, cats, outcomes=outcomes)
    seconds = time.perf_counter() - started
    f1 = {name: row["probeguard"].get("f1") for name, row in pii_report["sources"].items()}
    categories = {f"{c}/{name}": {"role": row["role"], "value": row.get("recall", row.get("fpr")), "n": row["texts"]}
                  for c, block in cat_report.items() for name, row in block["sources"].items()}  # fmt: skip
    m = det.bundle.manifest
    label = f"{m.name}/{m.version} {variant or serving_variant(m.host.activations, '', 'onnx')}"
    return {"entry": label, "tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 1),
            "f1": f1, "categories": categories, "outcomes": outcomes}  # fmt: skip


def paired_intervals(ref: dict, other: dict, resamples: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """95 % bootstrap interval of `other` minus `ref` per source, resampling the same texts for both (paired): entity
    F1 for PII sources, recall or FPR for category sources. An interval inside [-0.01, 0.01] resolves the bound; one
    that straddles it says the dev part is too small to tell."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {}
    for key, a in ref["outcomes"].items():
        b = other["outcomes"][key]
        if len(a) == 0:
            continue
        idx = rng.integers(0, len(a), size=(resamples, len(a)))  # [resamples, texts]
        if a.ndim == 2:  # (matched, predicted, gold) counts per text
            if not a[:, 2].any():
                continue  # a PII-free source has no F1
            diff = _f1(b[idx].sum(1)) - _f1(a[idx].sum(1))
        else:  # flags per text
            diff = b[idx].mean(1) - a[idx].mean(1)
        out[key] = [round(float(x), 4) for x in np.percentile(diff, [2.5, 97.5])]
    return out


def _f1(counts: np.ndarray) -> np.ndarray:
    """[resamples, 3] summed (matched, predicted, gold) -> [resamples] micro F1."""
    return 2 * counts[:, 0] / np.maximum(counts[:, 1] + counts[:, 2], 1)


def _pooled(report: dict, positive: bool) -> float:
    """Recall over every positive text (or FPR over every negative text) of all category sources together."""
    rows = [v for v in report["categories"].values() if (v["role"] == "positive") == positive]
    return sum(v["value"] * v["n"] for v in rows) / max(1, sum(v["n"] for v in rows))


def paired_verdict(ref: dict, intervals: dict[str, list[float]]) -> dict[str, list[str]]:
    """Sources by what their paired interval says about the bound: `within` (the loss is surely under 0.01),
    `worse` (surely over 0.01), `unresolved` (the dev part cannot tell). A loss is a drop in F1 or recall, a rise in
    FPR for look-alike and negative sources."""
    out: dict[str, list[str]] = {"within": [], "worse": [], "unresolved": []}
    for key, (low, high) in intervals.items():
        row = ref["categories"].get(key)
        worst, best = (high, low) if row is not None and row["role"] != "positive" else (-low, -high)  # as losses
        out["within" if worst <= BOUND else "worse" if best > BOUND else "unresolved"].append(key)
    return out


def verdict(ref: dict, other: dict) -> dict[str, float | bool]:
    """Worst per-source losses of `other` against `ref` (F1 drop, recall drop, look-alike/negative FPR rise), the
    same pooled over sources (mean F1, recall over all harmful texts, FPR over all negative texts), and the speed
    ratio. Per source, the bound is finer than one text on most category sources (5-80 texts each): with per-text
    outcomes on both, `paired_verdict` says which sources the dev parts can resolve."""
    f1 = [(ref["f1"][k], other["f1"][k]) for k in ref["f1"] if ref["f1"][k] is not None]
    cats = [(v["role"], v["value"], other["categories"][k]["value"]) for k, v in ref["categories"].items()]
    f1_drop = max((a - b for a, b in f1), default=0.0)
    recall_drop = max((a - b for role, a, b in cats if role == "positive"), default=0.0)
    fpr_rise = max((b - a for role, a, b in cats if role != "positive"), default=0.0)
    mean_f1_drop = sum(a - b for a, b in f1) / max(1, len(f1))
    pooled_recall_drop = _pooled(ref, True) - _pooled(other, True)
    pooled_fpr_rise = _pooled(other, False) - _pooled(ref, False)
    return {"f1_drop": round(f1_drop, 4), "recall_drop": round(recall_drop, 4), "fpr_rise": round(fpr_rise, 4),
            "mean_f1_drop": round(mean_f1_drop, 4), "pooled_recall_drop": round(pooled_recall_drop, 4),
            "pooled_fpr_rise": round(pooled_fpr_rise, 4),
            "speedup": round(other["tokens_per_s"] / ref["tokens_per_s"], 2),
            "within_bounds": f1_drop <= BOUND and recall_drop <= BOUND and fpr_rise <= BOUND,
            "pooled_within_bounds": max(mean_f1_drop, pooled_recall_drop, pooled_fpr_rise) <= BOUND}  # fmt: skip


def render(reports: list[dict], verdicts: dict[str, dict]) -> str:
    lines = ["| | " + " | ".join(r["entry"] for r in reports) + " |", "|---" * (len(reports) + 1) + "|",
             "| tokens/s | " + " | ".join(str(r["tokens_per_s"]) for r in reports) + " |"]  # fmt: skip
    for name, value in reports[0]["f1"].items():
        if value is not None:
            lines.append(f"| F1 {name} | " + " | ".join(f"{r['f1'][name]:.3f}" for r in reports) + " |")
    for name, row in reports[0]["categories"].items():
        what = "recall" if row["role"] == "positive" else "FPR"
        cells = " | ".join(f"{r['categories'][name]['value']:.3f}" for r in reports)
        lines.append(f"| {what} {name} | {cells} |")
    for r in reports[1:]:
        v = verdicts[r["entry"]]
        where = "within" if v["within_bounds"] else "outside"
        pooled = "within" if v["pooled_within_bounds"] else "outside"
        lines.append(f"\n{r['entry']} vs {reports[0]['entry']}: {v['speedup']}x tokens/s. Per source: worst F1 drop "
                     f"{v['f1_drop']:+.3f}, worst recall drop {v['recall_drop']:+.3f}, worst FPR rise "
                     f"{v['fpr_rise']:+.3f}: {where} the {BOUND} bounds. Pooled: mean F1 drop "
                     f"{v['mean_f1_drop']:+.3f}, recall drop {v['pooled_recall_drop']:+.3f}, FPR rise "
                     f"{v['pooled_fpr_rise']:+.3f}: {pooled}.")  # fmt: skip
        paired = v.get("paired")
        if paired:
            lines.append(f"Paired 95 % intervals, per source: {len(paired['within'])} surely within the {BOUND} bound, "
                         f"{len(paired['worse'])} surely worse ({', '.join(paired['worse']) or 'none'}), "
                         f"{len(paired['unresolved'])} too small to tell ({FIT_NOISE}).")  # fmt: skip
    return "\n".join(lines)


def run(entries: list[str] | None, max_per_source: int, threads: int) -> dict[str, object]:
    """Every entry (default: `default_entries`) on the same capped dev parts; verdicts against the first."""
    entries = entries or default_entries()
    pii = _capped(build_pii_sources(seed=0), max_per_source)
    cats = _capped(category_sources(seed=0), max_per_source)
    reports = [measure(e, threads, pii, cats) for e in entries]
    verdicts = {}
    for r in reports[1:]:
        intervals = paired_intervals(reports[0], r)
        verdicts[r["entry"]] = {**verdict(reports[0], r), "intervals": intervals,
                                "paired": paired_verdict(reports[0], intervals)}  # fmt: skip
    for r in reports:
        del r["outcomes"]  # per-text arrays: used above, not reported
    return {"max_per_source": max_per_source, "threads": threads, "cpu_int8_path": int8_path(), "reports": reports,
            "verdicts": verdicts}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", nargs="+", help="bundle folders, each optionally :fp32/:int8/:fp16 (default: its own)")
    p.add_argument("--max-per-source", type=int, default=150)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the full report here")
    args = p.parse_args()
    result = run(args.serve, args.max_per_source, args.threads)
    print(
        f"{args.threads} thread(s); CPU int8 path {result['cpu_int8_path']} (detector.cpu); dev parts, first "
        f"{args.max_per_source} texts per source\n"
    )
    print(render(result["reports"], result["verdicts"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
