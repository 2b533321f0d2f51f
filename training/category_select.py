"""Leave-one-source-out selection of a category head (layer or layer set x pooling), with scikit-learn.

For each held-out source S of a category, two logistic regressions are fitted on pooled activations of every source
outside S's family (sources written in one style, e.g. harmful and benign multilingual requests, are held out
together), each with one half of the training-side negatives of several kinds (ordinary instructions, documents); each
one's threshold is set at the target FPR on the other half, negatives it did not fit (`fit.threshold_halves`); then S
is scored by both: a positive source by recall at each model's threshold (averaged) and AUROC against held-out
negatives, a look-alike source by its false-positive rate. Candidates are ranked by the worst positive source's
recall; a candidate whose worst look-alike FPR exceeds its budget, or whose thresholds flag more held-out negatives
than theirs (mean over the folds), ranks below every one that keeps it (each budget broken costs 1); ranks
within `--tolerance` of the best are ties, broken by the mean held-out recall (`best_candidate`). A layer set (e.g.
`--layer-set 6 8`) pools each layer and concatenates them.

    python -m probeguard.training.category_select [--layers 6 8 10] [--layer-set 6 8]
        [--poolings mean window-max attention] [--out sel.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from probeguard.detector.heads import SequenceLinearConfig, SequenceLinearHead
from probeguard.training import fit
from probeguard.training.attention_select import (
    DEFAULT_RECIPE,
    AttentionRecipe,
    TokenSource,
    loso_attention,
    token_sources,
)
from probeguard.training.category_sources import CategorySource
from probeguard.training.fit import (
    PooledSource,
    calibrate_category,
    fit_pooled_classifier,
    loso_table,
)
from probeguard.training.sae_select import SAE_POOLINGS, is_sae_candidate, new_sparse_classifier, sae_sources
from probeguard.training.window_select import WindowedSource, loso_window, windowed_sources

WINDOW = 16  # tokens per run for rolling-mean-max
WINDOW_MAX = "window-max"  # the candidate served by a WindowMaxHead (training.window_select), not a pooling
ATTENTION = "attention"  # the candidate served by an AttentionPoolHead (training.attention_select)
# candidates that read one layer's tokens (or its SAE codes), not concatenated pooled layers
SINGLE_LAYER = (WINDOW_MAX, ATTENTION, *SAE_POOLINGS)


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
    classifier=new_classifier,
) -> dict[str, dict]:
    """`fit.loso_table` for pooled linear heads (`classifier(c)`, a scaled logistic regression, per half-model)."""

    def fit_model(others: list[PooledSource], negatives: list[np.ndarray]) -> Pipeline:
        x = np.concatenate([p.x for p in others] + [np.stack(negatives)])
        y = np.concatenate([p.y for p in others] + [np.zeros(len(negatives))])
        w = np.concatenate([sample_weights(others, lookalike_weight), np.ones(len(negatives))])
        return classifier(c).fit(x, y, logisticregression__sample_weight=w)

    return loso_table(data, lambda p: list(p.x), fit_model, lambda clf, x: clf.decision_function(np.stack(x)),
                      target_fpr, seed, per_kind)  # fmt: skip


def rank(result: dict[str, dict], max_lookalike_fpr: float, max_negative_fpr: float = 1.0) -> float:
    """Worst held-out recall, less 1 per budget broken: any look-alike source's FPR over `max_lookalike_fpr`; the
    held-out negatives' FPR at the folds' thresholds, averaged over folds, over `max_negative_fpr` (a candidate can
    buy recall with a threshold that is looser on unseen negatives than on the ones it was set on)."""
    positive = [r for r in result.values() if r["role"] == "positive"]
    fprs = [r["fpr"] for r in result.values() if r["role"] == "lookalike"]
    negative_fpr = np.mean([r.get("heldout_negative_fpr", 0.0) for r in positive])
    over = int(bool(fprs) and max(fprs) > max_lookalike_fpr) + int(negative_fpr > max_negative_fpr)
    return min(r["recall"] for r in positive) - over


def mean_recall(result: dict[str, dict]) -> float:
    return float(np.mean([r["recall"] for r in result.values() if r["role"] == "positive"]))


def best_candidate(results: dict[str, dict], tolerance: float) -> str:
    """The best rank (worst held-out recall, look-alike budget as a penalty) decides; ranks within `tolerance` of the
    best are ties (the worst source is often a 20-30 text one: its recall is noise at that scale), broken by the mean
    held-out recall over positive sources. Dict order breaks exact ties (the first candidate listed)."""
    top = max(r["rank"] for r in results.values())
    near = [k for k, r in results.items() if r["rank"] >= top - tolerance]
    return max(near, key=lambda k: mean_recall(results[k]["by_source"]))


def fit_category(
    name: str,
    layers: Sequence[int],
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
    weights = sample_weights(data, lookalike_weight)
    clf, oof, y, negative, kinds = fit_pooled_classifier(data, lambda: new_classifier(c), seed, weights)
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_[0] / scaler.scale_  # [len(layers) * d_model]
    b = float(lr.intercept_[0] - (lr.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    config = SequenceLinearConfig(name=name, layer=layers[0], labels=(name,), pooling=pooling, window=WINDOW,
                                  extra_layers=tuple(layers[1:]))  # fmt: skip
    head = SequenceLinearHead(config, len(w) // len(layers))
    threshold, info = calibrate_category(head, w, b, oof, y, negative, kinds, target_fpr, per_kind)
    return head, threshold, info


def candidate_key(layers: Sequence[int], pooling: str) -> str:
    """ "L6/mean", or "L6+8/mean" for a layer set (see `parse_candidate`)."""
    return f"L{'+'.join(str(k) for k in layers)}/{pooling}"


def parse_candidate(key: str) -> tuple[tuple[int, ...], str]:
    """`candidate_key`'s inverse: "L6+8/mean" -> ((6, 8), "mean"). ValueError if malformed."""
    layers, pooling = key.split("/", 1)
    return tuple(int(k) for k in layers.removeprefix("L").split("+")), pooling


def pool_sources(sources: Sequence[CategorySource], harvest, layers: Sequence[int], pooling: str) -> list[PooledSource]:
    """Each source's train part pooled per layer and concatenated in `layers` order: [n, len(layers) * d_model]."""
    out = []
    for s in sources:
        store, _ = harvest([r.text for r in s.train], f"harvest {s.category}/{s.name}")
        x = np.concatenate([pooled(store.per_text(k), pooling) for k in layers], axis=1)
        out.append(PooledSource(s, x, np.array([r.label for r in s.train])))
    return out


def candidate_parts(sources: Sequence[CategorySource], harvest, layers: Sequence[int], pooling: str, sae=None) -> list:
    """A candidate's train parts in the form its head fits on: per-token (attention), windowed (window-max), pooled
    SAE codes (sae-max, sae-mean: `sae` on that layer) or pooled and concatenated over `layers` (every other
    pooling)."""
    if is_sae_candidate(pooling):
        return sae_sources(sources, harvest, layers[0], sae, pooling)
    if pooling == ATTENTION:
        return token_sources(sources, harvest, layers[0])
    if pooling == WINDOW_MAX:
        return windowed_sources(sources, harvest, layers[0])
    return pool_sources(sources, harvest, layers, pooling)


def select(
    category: str,
    sources: Sequence[CategorySource],
    harvest,
    candidates: Sequence[tuple[int, ...]],
    poolings: Sequence[str],
    target_fpr: float,
    max_lookalike_fpr: float,
    c: float,
    seed: int,
    lookalike_weight: float = 1.0,
    per_kind: bool = False,
    tolerance: float = 0.0,
    max_negative_fpr: float = 1.0,
    attention: AttentionRecipe = DEFAULT_RECIPE,
    held_out: bool = True,
    held_out_families: Collection[str] | None = None,
    sae=None,
) -> tuple[list[PooledSource] | list[WindowedSource] | list[TokenSource], tuple[int, ...], str, dict]:
    """Every (layers, pooling) candidate left-one-family-out (`candidates`: a single layer `(k,)` or a set whose
    pooled activations are concatenated); returns the winner's pooled (windowed, per-token) train parts, layers,
    pooling and every candidate's per-source results. Pooling `window-max` is a `WindowMaxHead` candidate and
    `attention` an `AttentionPoolHead` one (single layers only). `held_out=False` takes a single candidate as chosen
    without its leave-one-out table (a refit of a fixed choice); more than one candidate is then a ValueError.
    `held_out_families`: attention candidates hold out only these (a partial table, for comparison per source).
    `sae`: the SAE the sae-max / sae-mean candidates read (training.sae_select)."""
    keys = [(layers, pooling) for layers in candidates for pooling in poolings
            if not (pooling in SINGLE_LAYER and len(layers) > 1)]  # fmt: skip
    if not held_out:
        if len(keys) != 1:
            raise ValueError(f"held_out=False needs exactly one candidate, got {len(keys)}")
        layers, pooling = keys[0]
        summary = {"candidates": {}, "chosen": candidate_key(layers, pooling), "tolerance": tolerance,
                   "held_out": False}  # fmt: skip
        return candidate_parts(sources, harvest, layers, pooling, sae), tuple(layers), pooling, summary
    results: dict[str, dict] = {}
    pooled: dict[str, list] = {}
    for layers, pooling in keys:
        key = candidate_key(layers, pooling)
        pooled[key] = candidate_parts(sources, harvest, layers, pooling, sae)
        if is_sae_candidate(pooling):
            res = loso(pooled[key], target_fpr, seed, c, lookalike_weight, per_kind, new_sparse_classifier)
        elif pooling == ATTENTION:
            res = loso_attention(pooled[key], target_fpr, seed, per_kind, attention, held_out_families)
        elif pooling == WINDOW_MAX:
            res = loso_window(pooled[key], target_fpr, seed, c, per_kind)
        else:
            res = loso(pooled[key], target_fpr, seed, c, lookalike_weight, per_kind)
        # "layer": the deepest one read, what the candidate costs (loadtest.layers tabulates by it)
        results[key] = {"layer": max(layers), "layers": list(layers), "pooling": pooling, "by_source": res,
                        "rank": round(rank(res, max_lookalike_fpr, max_negative_fpr), 4)}  # fmt: skip
        worst = sorted(res.items(), key=lambda kv: kv[1].get("recall", 1.0))[:3]
        print(json.dumps({"category": category, "candidate": key, "rank": results[key]["rank"],
                          "worst_positive": worst}), flush=True)  # fmt: skip
    best = best_candidate(results, tolerance)
    chosen = results[best]
    summary = {"candidates": results, "chosen": best, "tolerance": tolerance}
    return pooled[best], tuple(chosen["layers"]), chosen["pooling"], summary


def main(argv: Sequence[str] | None = None) -> int:
    from probeguard.training.category_sources import category_sources
    from probeguard.training.pii_harvest import harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--categories", nargs="+", default=["unsafe", "prompt_injection"])
    p.add_argument("--layers", type=int, nargs="+", default=[6, 8, 10])
    p.add_argument("--layer-set", type=int, nargs="+", action="append", default=[],
                   help="a candidate concatenating these layers (repeatable)")  # fmt: skip
    p.add_argument("--poolings", nargs="+", default=["mean", WINDOW_MAX, ATTENTION])
    p.add_argument("--target-fpr", type=float, default=0.01)
    p.add_argument("--max-lookalike-fpr", type=float, default=0.05)
    p.add_argument("--max-negative-fpr", type=float, default=0.02, help="held-out negatives, mean over folds")
    p.add_argument("--regularization", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-kind-threshold", action="store_true", help="every negative kind within the target FPR")
    p.add_argument("--tolerance", type=float, default=0.15, help="worst-recall differences below this are ties")
    p.add_argument("--harvest-layers", type=int, nargs="+", default=[],
                   help="layers the host reads (default: the candidates'); the cache is keyed by them, so pass a "
                        "training run's layers (e.g. 6 8 10) to reuse its activations")  # fmt: skip
    p.add_argument("--attention-queries", type=int, default=DEFAULT_RECIPE.queries,
                   help="queries per attention-pooled head (the default config: 16 for unsafe, 4 for "
                        "prompt_injection; categories.attention_queries)")  # fmt: skip
    p.add_argument("--pair-weight", type=float, default=DEFAULT_RECIPE.pair_weight,
                   help="attention heads' ranking loss on minimal pairs (categories.pair_weight)")  # fmt: skip
    p.add_argument("--hold-out", nargs="+", metavar="FAMILY",
                   help="attention candidates: hold out only these families or sources (a partial table, to compare "
                        "per source with an earlier full one)")  # fmt: skip
    p.add_argument("--sae", type=Path, help="an SAE folder (SAELens layout) for the sae-max / sae-mean candidates")
    p.add_argument("--out", type=Path, help="write the selection as JSON here")
    args = p.parse_args(argv)
    sae = None
    if args.sae:
        from probeguard.detector.sae import read_sae_folder

        sae = read_sae_folder(args.sae, json.loads((args.sae / "cfg.json").read_text())["probeguard"]["name"])
    attention = AttentionRecipe(queries=args.attention_queries, pair_weight=args.pair_weight)
    read = sorted({*args.layers, *(k for s in args.layer_set for k in s)})
    if args.harvest_layers and not set(read) <= set(args.harvest_layers):
        p.error(f"--harvest-layers must include every candidate layer {read}")
    harvest = harvester(sorted(set(args.harvest_layers) | set(read)))
    candidates = [(k,) for k in args.layers] + [tuple(s) for s in args.layer_set]
    sources = category_sources(args.seed)
    summary = {}
    for category in args.categories:
        chosen = [s for s in sources if s.category == category]
        *_, summary[category] = select(category, chosen, harvest, candidates, args.poolings, args.target_fpr,
                                       args.max_lookalike_fpr, args.regularization, args.seed,
                                       per_kind=args.per_kind_threshold, tolerance=args.tolerance,
                                       max_negative_fpr=args.max_negative_fpr, attention=attention,
                                       held_out_families=set(args.hold_out) if args.hold_out else None,
                                       sae=sae)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
