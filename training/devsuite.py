"""`probeguard eval --suite dev`: a bundle and the peer (Presidio) side by side on the dev parts of every source.

Dev parts are split from training by document or sub-corpus (`training/pii_sources.py`) and never used to fit,
select or threshold anything. Per source: entity P/R/F1 on the labels that source annotates (half-overlap matching:
same label, shared characters cover half of the gold span and half of the prediction; exact-boundary F1 beside it),
and structured-type spans per 1,000 texts that contain no structured PII (real texts from the dev parts and the
project's PII-free texts): every such span is a false positive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probeguard.training.data import SpanExample
from probeguard.training.evaluate import auroc_against, entity_scores, half_match_counts
from probeguard.training.fit import twin_aurocs
from probeguard.training.pii_sources import STRUCTURED, SpanSource

Triple = tuple[str, int, int]
ENGLISH_SOURCES = ("wikigold", "btc", "wnut17", "business", "synthetic")
# A fixed grid of calibrated-score thresholds (not derived from the dev parts), so the operating-point table shows the
# recall-vs-false-positive trade-off a deployment can pick with `PROBEGUARD_CATEGORY_THRESHOLDS` without any point on
# it having been chosen on the data it is measured on.
THRESHOLD_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _structured_per_1000(examples: Sequence[SpanExample], pred: Sequence[list[Triple]]) -> tuple[float, int]:
    clean = [p for e, p in zip(examples, pred, strict=True) if not any(s[0] in STRUCTURED for s in e.spans)]
    spans = sum(t[0] in STRUCTURED for p in clean for t in p)
    return round(1000 * spans / max(len(clean), 1), 2), len(clean)


def scored_labels(source: SpanSource) -> set[str]:
    """The labels a source's entities are scored on; on PII-free text, the structured ones (any span is wrong)."""
    return set(source.labels) if source.kind != "pii_free" else set(STRUCTURED)


def score_spans(
    source: SpanSource, examples: Sequence[SpanExample], pred: Sequence[list[Triple]], peer_labels: set[str] | None
) -> dict:
    """One system's spans on `examples` of `source` (its dev part, or its train part when it is held out).
    `peer_labels`: the labels the system can emit at all (None: every label)."""
    gold = [list(e.spans) for e in examples]
    labels = scored_labels(source)
    scored = labels if peer_labels is None else labels & peer_labels
    out: dict[str, object] = {}
    if source.kind != "pii_free" and scored:
        s = entity_scores(gold, pred, scored)
        out.update(f1=s["micro_half"]["f1"], precision=s["micro_half"]["precision"],
                   recall=s["micro_half"]["recall"], exact_f1=s["micro"]["f1"], support=s["micro"]["support"],
                   per_label=dict(s["per_label_half"]), labels=sorted(scored))  # fmt: skip
    out["structured_per_1000"], out["clean_texts"] = _structured_per_1000(examples, pred)
    return out


def text_outcomes(source: SpanSource, examples: Sequence[SpanExample], pred: Sequence[list[Triple]]) -> np.ndarray:
    """[n_texts, 3] half-overlap (matched, predicted, gold) entity counts per text on the labels `source` annotates:
    summed over any subset of texts they give that subset's micro F1 (paired comparisons resample texts)."""
    labels = scored_labels(source)
    rows = [half_match_counts(e.spans, p, labels) for e, p in zip(examples, pred, strict=True)]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 3)


def run_pii(
    detector,
    sources: Sequence[SpanSource],
    with_peer: bool = True,
    token_budget: int | None = None,
    outcomes: dict[str, np.ndarray] | None = None,
) -> dict:
    """`outcomes`, if given, receives each source's per-text counts (`text_outcomes`) of this detector."""
    from probeguard.training.peer import PRESIDIO_LABELS, presidio_engine, presidio_spans

    engine = presidio_engine() if with_peer else None
    results: dict[str, dict] = {}
    real_clean: dict[str, list] = {"probeguard": [], "presidio": []}
    for source in sources:
        texts = [e.text for e in source.dev]
        started = time.perf_counter()
        ours = [[(s.label, s.start, s.end) for s in d.spans] for d in detector.detect(texts, token_budget=token_budget)]
        row = {"texts": len(texts), "kind": source.kind, "probeguard": score_spans(source, source.dev, ours, None),
               "probeguard_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        if engine is not None:
            started = time.perf_counter()
            peer = presidio_spans(engine, texts)
            row["presidio"] = score_spans(source, source.dev, peer, set(PRESIDIO_LABELS.values()))
            row["presidio_seconds"] = round(time.perf_counter() - started, 1)
            if source.kind in ("encyclopedic", "social"):
                real_clean["presidio"] += list(zip(source.dev, peer, strict=True))
        if source.kind in ("encyclopedic", "social"):
            real_clean["probeguard"] += list(zip(source.dev, ours, strict=True))
        if outcomes is not None:
            outcomes[source.name] = text_outcomes(source, source.dev, ours)
        results[source.name] = row
    real = {}
    for system, pairs in real_clean.items():
        if pairs:
            rate, n = _structured_per_1000([e for e, _ in pairs], [p for _, p in pairs])
            real[system] = {"structured_per_1000": rate, "texts": n}
    return {"sources": results, "real_text_structured": real}


def run_categories(
    detector, sources: Sequence, token_budget: int | None = None, outcomes: dict[str, np.ndarray] | None = None
) -> dict:
    """Each category source's dev part through the served heads: positives by recall at the shipped threshold,
    look-alikes and negatives by false-positive rate, and AUROC of every positive source against the pooled negative
    dev parts of that category, against the clean documents alone (`documents`: the carriers an injection hides in,
    so for a document with an attack that is the like-for-like comparison) and against its family's look-alikes
    (`fit.twin_aurocs`: harmful requests vs their benign twins). `outcomes`, if given, receives each
    source's per-text flags at the threshold, keyed "category/source"."""
    out: dict[str, dict] = {}
    for category in sorted({s.category for s in sources}):
        if category not in detector.plan.categories:
            continue
        threshold = detector.plan.categories[category][2]
        rows, negatives = {}, []
        scored, documents = [], np.zeros(0)
        for source in (s for s in sources if s.category == category and s.dev):
            results = detector.detect([r.text for r in source.dev], token_budget=token_budget)
            scores = np.array([r.categories[category].score for r in results])
            scored.append((source, scores))
            if source.role == "negative":
                negatives.append(scores)
                documents = scores if source.name == "documents" else documents
        neg = np.concatenate(negatives) if negatives else np.zeros(0)
        for source, scores in scored:
            flagged = float((scores >= threshold).mean())
            if outcomes is not None:
                outcomes[f"{category}/{source.name}"] = scores >= threshold
            row: dict[str, object] = {"role": source.role, "texts": len(scores)}
            if source.role == "positive":
                row["recall"] = round(flagged, 4)
                if len(neg):
                    row["auroc"] = auroc_against(scores, neg)
                if len(documents):
                    row["auroc_documents"] = auroc_against(scores, documents)
            else:
                row["fpr"] = round(flagged, 4)
            rows[source.name] = row
        for name, value in twin_aurocs([s for s, _ in scored], {s.name: v for s, v in scored}).items():
            rows[name]["auroc_twins"] = value
        points = operating_points([(s.role, v) for s, v in scored], sorted({*THRESHOLD_GRID, round(threshold, 4)}))
        out[category] = {"threshold": round(threshold, 4), "sources": rows, "operating_points": points}
    return out


def operating_points(scored: Sequence[tuple[str, np.ndarray]], thresholds: Sequence[float]) -> list[dict]:
    """Per threshold: worst and mean recall over positive sources, mean and max FPR over look-alike sources, and the
    FPR on the pooled ordinary negatives (`scored`: (role, [n] scores) per source)."""
    pos = [v for role, v in scored if role == "positive" and len(v)]
    look = [v for role, v in scored if role == "lookalike" and len(v)]
    neg = np.concatenate([v for role, v in scored if role == "negative"] or [np.zeros(0)])
    rows = []
    for t in thresholds:
        recalls = [float((v >= t).mean()) for v in pos]
        fprs = [float((v >= t).mean()) for v in look]
        row: dict[str, float] = {"threshold": float(t)}
        if recalls:
            row.update(worst_recall=round(min(recalls), 4), mean_recall=round(float(np.mean(recalls)), 4))
        if fprs:
            row.update(mean_lookalike_fpr=round(float(np.mean(fprs)), 4), max_lookalike_fpr=round(max(fprs), 4))
        if len(neg):
            row["negative_fpr"] = round(float((neg >= t).mean()), 4)
        rows.append(row)
    return rows


def render_categories(cats: dict) -> list[str]:
    lines = ["## Categories, per source (dev parts, shipped threshold)", "",
             "| category | source | role | texts | recall | FPR | AUROC vs negatives | AUROC vs clean documents | "
             "AUROC vs twins |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for category, block in cats.items():
        ordered = sorted(block["sources"].items(), key=lambda kv: (kv[1]["role"], kv[1].get("recall", 0.0)))
        for name, r in ordered:
            lines.append(f"| {category} | {name} | {r['role']} | {r['texts']} | {r.get('recall', '')} | "
                         f"{r.get('fpr', '')} | {r.get('auroc', '')} | {r.get('auroc_documents', '')} | "
                         f"{r.get('auroc_twins', '')} |")  # fmt: skip
    for category, block in cats.items():
        if not block.get("operating_points"):
            continue
        lines += ["", f"### {category}: operating points (dev parts; shipped threshold {block['threshold']})", "",
                  "| threshold | worst recall | mean recall | look-alike FPR mean / max | ordinary negatives FPR |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for p in block["operating_points"]:
            lines.append(f"| {p['threshold']} | {p.get('worst_recall', '')} | {p.get('mean_recall', '')} | "
                         f"{p.get('mean_lookalike_fpr', '')} / {p.get('max_lookalike_fpr', '')} | "
                         f"{p.get('negative_fpr', '')} |")  # fmt: skip
    return lines


def render_markdown(report: dict) -> str:
    pii = report["pii"]
    lines = [f"# Dev suite — {report['bundle']}", "",
             f"Machine: {report['machine']}. Command: `{report['command']}`. Dev parts only (never trained, selected "
             "or thresholded on). Entity F1 with half-overlap matching (exact-boundary F1 in brackets); the peer is "
             "Presidio 2.x + spaCy en_core_web_sm at score 0.5, scored on the labels it can emit.", "",
             "## PII, per source (worst first)", "",
             "| source | kind | texts | labels | probeguard F1 (exact) | P / R | Presidio F1 (exact) | Δ | "
             "structured spans / 1k clean texts (ours · Presidio) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = sorted(pii["sources"].items(), key=lambda kv: kv[1]["probeguard"].get("f1", 2.0))
    for name, row in rows:
        ours, peer = row["probeguard"], row.get("presidio", {})
        f1 = f"{ours['f1']:.3f} ({ours['exact_f1']:.3f})" if "f1" in ours else "—"
        pr = f"{ours['precision']:.2f} / {ours['recall']:.2f}" if "f1" in ours else "—"
        pf1 = f"{peer['f1']:.3f} ({peer['exact_f1']:.3f})" if "f1" in peer else "—"
        delta = f"{ours['f1'] - peer['f1']:+.3f}" if "f1" in ours and "f1" in peer else "—"
        labels = ", ".join(ours.get("labels", ["(none: PII-free)"]))
        fp = f"{ours['structured_per_1000']} · {peer.get('structured_per_1000', '—')}"
        lines.append(f"| {name} | {row.get('kind', '')} | {row['texts']} | {labels} | {f1} | {pr} | {pf1} | {delta} | "
                     f"{fp} |")  # fmt: skip
    real = pii["real_text_structured"]
    lines += ["", "Structured-type spans (" + ", ".join(STRUCTURED) + ") per 1,000 real dev texts with no structured "
              "PII (wikigold, btc, wnut17): probeguard " + str(real.get("probeguard", {}).get("structured_per_1000"))
              + ", Presidio " + str(real.get("presidio", {}).get("structured_per_1000")) + ".", "",
              "## Per label (probeguard, half-overlap F1 / support)", ""]  # fmt: skip
    for name, row in rows:
        per = row["probeguard"].get("per_label", {})
        if per:
            cells = ", ".join(f"{k} {v['f1']:.2f}/{v['support']}" for k, v in sorted(per.items()))
            lines.append(f"- **{name}**: {cells}")
    if report.get("categories"):
        lines += ["", *render_categories(report["categories"])]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "devsuite.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out_dir / "devsuite.md").write_text(render_markdown(report), encoding="utf-8")
