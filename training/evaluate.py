"""Entity-level evaluation: predicted spans vs gold spans, exact (label, start, end) matches, micro and per label."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Triple = tuple[str, int, int]


def entity_scores(gold: Sequence[Iterable[Triple]], pred: Sequence[Iterable[Triple]]) -> dict[str, object]:
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(g), set(p)
        for label, *_ in gs:
            n_gold[label] += 1
        for label, *_ in ps:
            n_pred[label] += 1
        for label, *_ in gs & ps:
            tp[label] += 1

    def prf(t: int, npred: int, ngold: int) -> dict[str, float]:
        precision = t / npred if npred else 0.0
        recall = t / ngold if ngold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": ngold}

    labels = sorted(set(n_gold) | set(n_pred))
    return {
        "micro": prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())),
        "per_label": {label: prf(tp[label], n_pred[label], n_gold[label]) for label in labels},
    }
