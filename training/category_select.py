"""Leave-one-source-out selection of a category head (layer x pooling), with scikit-learn.

For each held-out source S of a category, a logistic regression is fitted on pooled activations of every source
outside S's family (sources written in one style, e.g. harmful and benign multilingual requests, are held out
together); its threshold is set at the target FPR on the *pooled* training-side negatives of several kinds (ordinary
instructions, documents); then S is scored: a positive source by recall at that threshold and AUROC against held-out
negatives, a look-alike source by its false-positive rate. Candidates are ranked by the worst positive source's
recall, and a candidate whose worst look-alike FPR exceeds the budget ranks below every one that keeps it.

    python -m training.category_select [--layers 6 8 10] [--poolings mean window-max] [--out sel.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.heads import SequenceLinearConfig, SequenceLinearHead
from training import fit
from training.category_sources import CategorySource
from training.fit import (
    calibrate_category,
    heldout_row,
    loso_folds,
    negative_split,
    out_of_fold,
    row_roles,
    threshold_at,
)
from training.window_select import WindowedSource, loso_window, windowed_sources

WINDOW = 16  # tokens per run for rolling-mean-max
WINDOW_MAX = "window-max"  # the candidate served by a WindowMaxHead (training.window_select), not a pooling


@dataclass
class PooledSource:
    source: CategorySource
    x: np.ndarray  # [n, d_model] pooled activations of the train part
    y: np.ndarray  # [n] 0/1


def pooled(acts: Sequence[np.ndarray], pooling: str) -> np.ndarray:
    with torch.no_grad():
        return fit.pooled_features(acts, pooling, WINDOW).numpy()


def new_classifier(c: float = 0.1):
    """Standardise, then an L2 logistic regression with balanced class weights (positives are the minority)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))


def sample_weights(parts: Sequence[PooledSource], lookalike_weight: float) -> np.ndarray:
    """Each look-alike row counts `lookalike_weight` times: they are few beside ordinary negatives, yet they are the
    rows that teach harm (or an override) apart from its vocabulary."""
    return np.concatenate([np.full(len(p.y), lookalike_weight if p.source.role == "lookalike" else 1.0) for p in parts])


def loso(
    data: Sequence[PooledSource],
    target_fpr: float,
    seed: int,
    c: float = 0.1,
    lookalike_weight: float = 1.0,
    per_kind: bool = False,
) -> dict[str, dict]:
    negatives, neg_kind, keep, held = negative_split(data, seed)
    neg_x = np.concatenate([p.x for p in negatives])
    out: dict[str, dict] = {}
    for test, others in loso_folds(data):
        x = np.concatenate([p.x for p in others] + [neg_x[keep]])
        y = np.concatenate([p.y for p in others] + [np.zeros(len(keep))])
        w = np.concatenate([sample_weights(others, lookalike_weight), np.ones(len(keep))])
        clf = new_classifier(c).fit(x, y, logisticregression__sample_weight=w)
        threshold = threshold_at(clf.decision_function(neg_x[keep]), neg_kind[keep], target_fpr, per_kind)
        scores = clf.decision_function(test.x)
        out[test.source.name] = heldout_row(test.source.role, scores, threshold, clf.decision_function(neg_x[held]),
                                            neg_kind[held])  # fmt: skip
    return out


def rank(result: dict[str, dict], max_lookalike_fpr: float) -> float:
    recalls = [r["recall"] for r in result.values() if r["role"] == "positive"]
    fprs = [r["fpr"] for r in result.values() if r["role"] == "lookalike"]
    return min(recalls) - (1.0 if fprs and max(fprs) > max_lookalike_fpr else 0.0)


def fit_category(
    name: str,
    layer: int,
    pooling: str,
    data: Sequence[PooledSource],
    target_fpr: float,
    c: float,
    seed: int,
    lookalike_weight: float = 1.0,
    per_kind: bool = False,
) -> tuple[SequenceLinearHead, float, dict[str, float]]:
    """The served head: logistic regression on every source's train part (the scaler folded into the weights);
    Platt scaling (a 1-D logistic regression) and the threshold at `target_fpr` on the negatives (per kind, or pooled)
    come from out-of-fold scores of every train row (`fit.out_of_fold`), so thresholds rest on all negatives."""
    x = np.concatenate([p.x for p in data])  # [n, d_model]
    y = np.concatenate([p.y for p in data])
    weights = sample_weights(data, lookalike_weight)
    negative, kinds = row_roles(data)

    def fit_score(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        clf = new_classifier(c).fit(x[train_rows], y[train_rows],
                                    logisticregression__sample_weight=weights[train_rows])  # fmt: skip
        return clf.decision_function(x[test_rows])

    oof = out_of_fold(y, seed, fit_score)
    clf = new_classifier(c).fit(x, y, logisticregression__sample_weight=weights)
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_[0] / scaler.scale_  # [d_model]
    b = float(lr.intercept_[0] - (lr.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    head = SequenceLinearHead(SequenceLinearConfig(name=name, layer=layer, labels=(name,), pooling=pooling,
                                                   window=WINDOW), len(w))  # fmt: skip
    threshold, info = calibrate_category(head, w, b, oof, y, negative, kinds, target_fpr, per_kind)
    return head, threshold, info


def pool_sources(sources: Sequence[CategorySource], harvest, layer: int, pooling: str) -> list[PooledSource]:
    out = []
    for s in sources:
        store, _ = harvest([r.text for r in s.train], f"harvest {s.category}/{s.name}")
        out.append(PooledSource(s, pooled(store.per_text(layer), pooling), np.array([r.label for r in s.train])))
    return out


def select(
    category: str,
    sources: Sequence[CategorySource],
    harvest,
    layers: Sequence[int],
    poolings: Sequence[str],
    target_fpr: float,
    max_lookalike_fpr: float,
    c: float,
    seed: int,
    lookalike_weight: float = 1.0,
    per_kind: bool = False,
) -> tuple[list[PooledSource] | list[WindowedSource], int, str, dict]:
    """Every (layer, pooling) candidate left-one-family-out; returns the winner's pooled (or windowed) train parts,
    layer, pooling and every candidate's per-source results. Pooling `window-max` is a `WindowMaxHead` candidate."""
    results: dict[str, dict] = {}
    pooled: dict[str, list] = {}
    for layer in layers:
        for pooling in poolings:
            key = f"L{layer}/{pooling}"
            if pooling == WINDOW_MAX:
                pooled[key] = windowed_sources(sources, harvest, layer)
                res = loso_window(pooled[key], target_fpr, seed, c, per_kind)
            else:
                pooled[key] = pool_sources(sources, harvest, layer, pooling)
                res = loso(pooled[key], target_fpr, seed, c, lookalike_weight, per_kind)
            results[key] = {"layer": layer, "pooling": pooling, "by_source": res,
                            "rank": round(rank(res, max_lookalike_fpr), 4)}  # fmt: skip
            worst = sorted(res.items(), key=lambda kv: kv[1].get("recall", 1.0))[:3]
            print(json.dumps({"category": category, "candidate": key, "rank": results[key]["rank"],
                              "worst_positive": worst}), flush=True)  # fmt: skip
    best = max(results, key=lambda k: results[k]["rank"])
    return pooled[best], results[best]["layer"], results[best]["pooling"], {"candidates": results, "chosen": best}


def main(argv: Sequence[str] | None = None) -> int:
    from training.category_sources import category_sources
    from training.pii_harvest import harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--categories", nargs="+", default=["unsafe", "prompt_injection"])
    p.add_argument("--layers", type=int, nargs="+", default=[6, 8, 10])
    p.add_argument("--poolings", nargs="+", default=["mean", WINDOW_MAX])
    p.add_argument("--target-fpr", type=float, default=0.01)
    p.add_argument("--max-lookalike-fpr", type=float, default=0.05)
    p.add_argument("--regularization", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-kind-threshold", action="store_true", help="every negative kind within the target FPR")
    p.add_argument("--out", type=Path, help="write the selection as JSON here")
    args = p.parse_args(argv)
    harvest = harvester(args.layers)
    sources = category_sources(args.seed)
    summary = {}
    for category in args.categories:
        chosen = [s for s in sources if s.category == category]
        *_, summary[category] = select(category, chosen, harvest, args.layers, args.poolings, args.target_fpr,
                                       args.max_lookalike_fpr, args.regularization, args.seed,
                                       per_kind=args.per_kind_threshold)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
