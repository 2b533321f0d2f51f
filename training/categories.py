"""Category heads (unsafe, prompt_injection): linear probes with the pooling chosen on validation, SAE-feature
heads on the same layer, Platt calibration folded into the weights, thresholds at a target FPR on validation
negatives, and the linear-vs-SAE comparison that decides which head the bundle serves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from detector.heads import Head, SequenceLinearConfig, SequenceLinearHead
from training import fit
from training.evaluate import auroc, category_scores
from training.sae import SAEWeights, fit_sae_classifier, sae_head, sae_pooled_codes


@dataclass
class FittedCategory:
    head: Head
    threshold: float
    val: dict[str, float]  # category_scores on the validation split
    shifted: dict[str, float]  # category_scores on the shifted split (may be empty)
    detail: dict[str, object]


def _scores(head: Head, feats: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(feats @ head.weight.T + head.bias)[:, 0].numpy()


def _finish(
    head: Head, val_feats: torch.Tensor, val_y: np.ndarray, shift_feats: torch.Tensor | None, shift_y: np.ndarray,
    target_fpr: float, detail: dict[str, object],
) -> FittedCategory:  # fmt: skip
    with torch.no_grad():
        logits = (val_feats @ head.weight.T + head.bias)[:, 0].numpy()
    a, c = fit.platt(logits, val_y)
    fit.fold_platt(head, 0, a, c)
    probs = _scores(head, val_feats)
    threshold = fit.threshold_at_fpr(probs[val_y == 0], target_fpr)
    shifted = category_scores(_scores(head, shift_feats), shift_y, threshold) if shift_feats is not None else {}
    return FittedCategory(head, threshold, category_scores(probs, val_y, threshold), shifted, detail)


def fit_linear_category(
    name: str,
    layer: int,
    train_acts: Sequence[np.ndarray],
    train_y: np.ndarray,
    val_acts: Sequence[np.ndarray],
    val_y: np.ndarray,
    shift_acts: Sequence[np.ndarray],
    shift_y: np.ndarray,
    poolings: Sequence[str],
    target_fpr: float,
) -> FittedCategory:
    d_model = train_acts[0].shape[1]
    tried: dict[str, float] = {}
    best: tuple[float, SequenceLinearHead, str, torch.Tensor] | None = None
    for pooling in poolings:
        head = SequenceLinearHead(
            SequenceLinearConfig(name=name, layer=layer, labels=(name,), pooling=pooling), d_model
        )
        fit.fit_sequence_head(head, fit.pooled_features(train_acts, pooling, 16), train_y.reshape(-1, 1))
        val_feats = fit.pooled_features(val_acts, pooling, 16)  # [n_val, d_model], reused for the winner
        tried[pooling] = round(auroc(_scores(head, val_feats), val_y), 4)
        if best is None or tried[pooling] > best[0]:
            best = (tried[pooling], head, pooling, val_feats)
    if best is None:
        raise ValueError("no pooling configured for category heads")
    _, head, pooling, val_feats = best
    shift = fit.pooled_features(shift_acts, pooling, 16) if len(shift_acts) else None
    return _finish(head, val_feats, val_y, shift, shift_y, target_fpr,
                   {"kind": "linear", "pooling": pooling, "val_auroc_by_pooling": tried})  # fmt: skip


def fit_sae_category(
    name: str,
    layer: int,
    weights: SAEWeights,
    train_acts: Sequence[np.ndarray],
    train_y: np.ndarray,
    val_acts: Sequence[np.ndarray],
    val_y: np.ndarray,
    shift_acts: Sequence[np.ndarray],
    shift_y: np.ndarray,
    l1: float,
    target_fpr: float,
) -> FittedCategory:
    head = sae_head(f"{name}_sae", layer, (name,), "sequence", weights, pooling="max")
    used = fit_sae_classifier(head, sae_pooled_codes(head, train_acts), train_y.reshape(-1, 1), l1)
    shift = sae_pooled_codes(head, shift_acts) if len(shift_acts) else None
    return _finish(head, sae_pooled_codes(head, val_acts), val_y, shift, shift_y, target_fpr,
                   {"kind": "sae", "pooling": "max", "features_used": used})  # fmt: skip
