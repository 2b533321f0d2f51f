"""Evaluation: entity-level span metrics (exact and overlap matching) and category metrics (AUROC, P/R at threshold)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

Triple = tuple[str, int, int]


def span_triples(items: Iterable[Any]) -> list[list[Triple]]:
    """(label, start, end) per span, per item: for detections and for synthetic examples alike."""
    return [[(s.label, s.start, s.end) for s in item.spans] for item in items]


def _prf(tp: int, npred: int, ngold: int) -> dict[str, float]:
    precision = tp / npred if npred else 0.0
    recall = tp / ngold if ngold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": ngold}


def _overlaps(g: Triple, p: Triple) -> bool:
    return p[1] < g[2] and p[2] > g[1]


def _half_overlaps(g: Triple, p: Triple) -> bool:
    """Shared characters cover at least half of the gold span and half of the prediction."""
    shared = min(g[2], p[2]) - max(g[1], p[1])
    return shared > 0 and 2 * shared >= g[2] - g[1] and 2 * shared >= p[2] - p[1]


def _matched(gs: set[Triple], ps: set[Triple], rule: Callable[[Triple, Triple], bool]) -> Counter[str]:
    """Per-label count of gold entities matched by a same-label prediction under `rule`, each used at most once."""
    used: set[Triple] = set()
    hits: Counter[str] = Counter()
    ordered = sorted(ps, key=lambda t: t[1])
    for g in sorted(gs, key=lambda t: t[1]):
        match = next((q for q in ordered if q not in used and q[0] == g[0] and rule(g, q)), None)
        if match is not None:
            used.add(match)
            hits[g[0]] += 1
    return hits


def half_match_counts(gold: Iterable[Triple], pred: Iterable[Triple], only: set[str]) -> tuple[int, int, int]:
    """One text's (matched, predicted, gold) entity counts on the labels in `only`, half-overlap matching as in
    `entity_scores`' micro_half: summed over texts they give the same micro P/R/F1."""
    gs = {t for t in gold if t[0] in only}
    ps = {t for t in pred if t[0] in only}
    return sum(_matched(gs, ps, _half_overlaps).values()), len(ps), len(gs)


def entity_scores(
    gold: Sequence[Iterable[Triple]], pred: Sequence[Iterable[Triple]], only: set[str] | None = None
) -> dict[str, object]:
    """Micro and per-label P/R/F1. `micro`: same label and boundaries; `micro_half`: same label, shared characters
    cover half of the gold span and half of the prediction; `micro_overlap`: same label, any shared character (each
    gold and each predicted entity matched at most once). `only`: count just these labels."""
    tp: Counter[str] = Counter()
    tp_half: Counter[str] = Counter()
    tp_overlap: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        gs = {t for t in g if only is None or t[0] in only}
        ps = {t for t in p if only is None or t[0] in only}
        n_gold.update(label for label, *_ in gs)
        n_pred.update(label for label, *_ in ps)
        tp.update(label for label, *_ in gs & ps)
        tp_half.update(_matched(gs, ps, _half_overlaps))
        tp_overlap.update(_matched(gs, ps, _overlaps))
    labels = sorted(set(n_gold) | set(n_pred))
    predicted, support = sum(n_pred.values()), sum(n_gold.values())
    return {
        "micro": _prf(sum(tp.values()), predicted, support),
        "micro_half": _prf(sum(tp_half.values()), predicted, support),
        "micro_overlap": _prf(sum(tp_overlap.values()), predicted, support),
        "per_label": {label: _prf(tp[label], n_pred[label], n_gold[label]) for label in labels},
        "per_label_half": {label: _prf(tp_half[label], n_pred[label], n_gold[label]) for label in labels},
    }


def auroc_against(positive: np.ndarray, negative: np.ndarray) -> float:
    """AUROC of positive-class scores against negative-class scores, rounded to 4 places."""
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return round(float(roc_auc_score(labels, np.r_[positive, negative])), 4)


def category_scores(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = scores >= threshold
    pos, neg = y == 1, y == 0
    return {
        "auroc": round(float(roc_auc_score(y, scores)), 4) if pos.any() and neg.any() else float("nan"),
        "threshold": round(float(threshold), 4),
        "recall": round(float(flagged[pos].mean()), 4) if pos.any() else float("nan"),
        "fpr": round(float(flagged[neg].mean()), 4) if neg.any() else float("nan"),
        "precision": round(float(flagged[pos].sum() / max(flagged.sum(), 1)), 4),
        "positives": int(pos.sum()),
        "negatives": int(neg.sum()),
    }
