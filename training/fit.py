"""Fit heads on harvested activations with the served head modules themselves (no train/serve skew),
then calibrate (Platt scaling folded into the last linear layer) and choose thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from detector.activations import Activations
from detector.heads import Head
from detector.heads.pooling import pool


def pad_batch(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text [n_i, d] -> h [batch, max_n, d] float32 and mask [batch, max_n] bool."""
    longest = max(len(a) for a in arrays)
    h = torch.zeros(len(arrays), longest, arrays[0].shape[1])
    mask = torch.zeros(len(arrays), longest, dtype=torch.bool)
    for i, a in enumerate(arrays):
        h[i, : len(a)] = torch.from_numpy(a.astype(np.float32))
        mask[i, : len(a)] = True
    return h, mask


def _acts(layer: int, h: torch.Tensor, mask: torch.Tensor) -> Activations:
    return Activations(layers={layer: h}, attention_mask=mask, content_mask=mask)


def fit_token_head(
    head: Head,
    acts: Sequence[np.ndarray],  # per text [n_tokens, d_model]
    targets: Sequence[np.ndarray],  # per text [n_tokens, n_labels] 0/1
    epochs: int = 8,
    lr: float = 2e-3,
    batch_size: int = 32,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> list[float]:
    """Class-weighted multi-label BCE over text tokens; returns the loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    y_all = np.concatenate(targets)
    pos = y_all.sum(axis=0)
    pos_weight = torch.from_numpy(np.sqrt((len(y_all) - pos) / np.maximum(pos, 1.0))).float().clamp(1.0, 50.0)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    layer = head.config.layer
    history = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in torch.randperm(len(acts), generator=gen).split(batch_size):
            h, mask = pad_batch([acts[i] for i in batch])
            y, _ = pad_batch([targets[i] for i in batch])
            logits = head(_acts(layer, h, mask))  # [batch, seq, labels]
            loss = loss_fn(logits, y)[mask].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
    return history


def token_logits(head: Head, acts: Sequence[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for at in range(0, len(acts), batch_size):
            chunk = acts[at : at + batch_size]
            h, mask = pad_batch(chunk)
            logits = head(_acts(head.config.layer, h, mask))
            out.extend(logits[i, : len(a)].numpy() for i, a in enumerate(chunk))
    return out


def pooled_features(
    acts: Sequence[np.ndarray], pooling: str, window: int, batch_size: int = 64
) -> torch.Tensor:  # [n_texts, d_model]
    feats = []
    for at in range(0, len(acts), batch_size):
        h, mask = pad_batch(acts[at : at + batch_size])
        feats.append(pool(h, mask, pooling, window))
    return torch.cat(feats)


def fit_sequence_head(
    head: Head,
    features: torch.Tensor,  # [n, d_model] pooled activations
    y: np.ndarray,  # [n, n_labels] 0/1
    epochs: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-3,
) -> float:
    """Full-batch class-balanced logistic regression on pooled features; writes the head's weight and bias."""
    mu, sigma = features.mean(0), features.std(0).clamp(min=1e-3)
    x = (features - mu) / sigma
    target = torch.from_numpy(y).float()
    pos = target.sum(0)
    pos_weight = ((len(target) - pos) / pos.clamp(min=1)).clamp(1.0, 100.0)
    w = torch.zeros(target.shape[1], x.shape[1], requires_grad=True)
    b = torch.zeros(target.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        loss = loss_fn(x @ w.T + b, target) + weight_decay * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the served weights
        head.weight.copy_(w / sigma)
        head.bias.copy_(b - (w * (mu / sigma)).sum(1))
    return loss.item()


def platt(logits: np.ndarray, y: np.ndarray, steps: int = 500) -> tuple[float, float]:
    """Fit p = sigmoid(a * logit + c) on held-out data; returns (a, c)."""
    x, t = torch.from_numpy(logits.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    a, c = torch.ones(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([a, c], lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * x + c, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(a.detach().clamp(min=1e-3)), float(c.detach())


def fold_platt(head: Head, column: int, a: float, c: float) -> None:
    """Scale label `column` of a linear readout so that sigmoid(logit) is the calibrated probability."""
    with torch.no_grad():
        head.weight[column] *= a
        head.bias[column] = head.bias[column] * a + c


def threshold_at_fpr(negative_scores: np.ndarray, fpr: float) -> float:
    """Smallest threshold whose false-positive rate on the negatives is at most `fpr`."""
    return float(min(max(np.quantile(negative_scores, 1.0 - fpr), 1e-4), 1 - 1e-4))


def best_f1_threshold(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Threshold in [0.1, 0.95] maximising token-level F1; returns (threshold, f1)."""
    best = (0.5, -1.0)
    for t in np.linspace(0.1, 0.95, 35):
        pred = probs >= t
        tp = float((pred & (y > 0)).sum())
        f1 = 2 * tp / max(float(pred.sum() + (y > 0).sum()), 1.0)
        if f1 > best[1]:
            best = (float(t), f1)
    return best
