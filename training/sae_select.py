"""SAE-feature category candidates for the leave-one-source-out selection (training.category_select): a sparse (L1)
logistic regression on a text's SAE codes pooled over its tokens (`sae-max`, `sae-mean`), served by an
`SAEFeatureHead` that reads the bundle's SAE (the graph then encodes it on every pass: d_model x d_sae
multiply-adds per token, 2.6 M at 640 x 4,096, about 5 % of eight Gemma 3 270M blocks).

The same folds, sources, thresholds and ranking as every other candidate (`category_select.loso`); only the features
(pooled codes instead of pooled activations) and the penalty (L1: most weights exactly zero, so a decision reads a
few named features) differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from probeguard.detector.errors import ConfigError
from probeguard.detector.heads import SAEFeatureConfig, SAEFeatureHead
from probeguard.detector.heads.pooling import pool
from probeguard.detector.sae import SparseAutoencoder
from probeguard.training.category_sources import CategorySource
from probeguard.training.fit import PooledSource, calibrate_category, fit_pooled_classifier

SAE_POOLINGS = {"sae-max": "max", "sae-mean": "mean"}  # candidate name -> the head's pooling of codes


def is_sae_candidate(pooling: str) -> bool:
    return pooling in SAE_POOLINGS


def new_sparse_classifier(c: float = 0.1) -> Pipeline:
    """Codes scaled by their largest value (they are non-negative and sparse: no centring), then an L1 logistic
    regression with balanced class weights."""
    return make_pipeline(MaxAbsScaler(), LogisticRegression(penalty="l1", solver="liblinear", C=c,
                                                            class_weight="balanced", max_iter=2000))  # fmt: skip


def pooled_codes(acts: Sequence[np.ndarray], sae: SparseAutoencoder, pooling: str) -> np.ndarray:
    """[n_texts, d_sae] each text's codes pooled over its tokens as the served head pools them."""
    out = np.zeros((len(acts), sae.config.d_sae), dtype=np.float32)
    with torch.no_grad():
        for i, a in enumerate(acts):
            if len(a):
                codes = sae.encode(torch.from_numpy(np.array(a, dtype=np.float32))).unsqueeze(0)  # [1, n, d_sae]
                mask = torch.ones(codes.shape[:2], dtype=torch.bool)
                out[i] = pool(codes, mask, SAE_POOLINGS[pooling], 16)[0].numpy()
    return out


def sae_sources(
    sources: Sequence[CategorySource], harvest, layer: int, sae: SparseAutoencoder | None, pooling: str
) -> list:
    """Each source's train part as pooled codes (category_select.PooledSource)."""
    if sae is None:
        raise ConfigError(f"candidate {pooling} needs an SAE on layer {layer} ([sae] enabled)")
    if sae.config.layer != layer:
        raise ConfigError(f"candidate L{layer}/{pooling}: the SAE {sae.config.name} encodes layer {sae.config.layer}")
    out = []
    for s in sources:
        store, _ = harvest([r.text for r in s.train], f"harvest {s.category}/{s.name}")
        out.append(
            PooledSource(s, pooled_codes(store.per_text(layer), sae, pooling), np.array([r.label for r in s.train]))
        )
    return out


def fit_sae_category(
    name: str,
    sae: SparseAutoencoder,
    pooling: str,
    data: Sequence,  # category_select.PooledSource of pooled codes
    target_fpr: float,
    c: float,
    seed: int,
    weights: np.ndarray,
    per_kind: bool = False,
) -> tuple[SAEFeatureHead, float, dict[str, float]]:
    """The served SAE-feature head: the sparse classifier on every source's train part (scaler folded in), Platt
    scaling and threshold from out-of-fold scores, as `category_select.fit_category` does for pooled activations."""
    clf, oof, y, negative, kinds = fit_pooled_classifier(data, lambda: new_sparse_classifier(c), seed, weights)
    scale = np.where(clf[0].max_abs_ > 0, clf[0].max_abs_, 1.0)
    w = clf[-1].coef_[0] / scale  # [d_sae]
    config = SAEFeatureConfig(name=name, layer=sae.config.layer, labels=(name,), sae=sae.config.name,
                              d_sae=sae.config.d_sae, pooling=SAE_POOLINGS[pooling])  # fmt: skip
    head = SAEFeatureHead(config, sae.config.d_in)
    threshold, info = calibrate_category(head, w, float(clf[-1].intercept_[0]), oof, y, negative, kinds, target_fpr,
                                         per_kind)  # fmt: skip
    return head, threshold, {**info, "features_used": int((w != 0).sum())}
