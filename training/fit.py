"""Fit heads on harvested activations with the served head modules themselves (no train/serve skew),
then calibrate (Platt scaling folded into the last linear layer) and choose thresholds."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from probeguard.detector.activations import Activations
from probeguard.detector.heads import Head
from probeguard.detector.heads.pooling import pool
from probeguard.detector.sae import SparseAutoencoder
from probeguard.training.evaluate import auroc_against


def pad_batch(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text [n_i, d] -> h [batch, max_n, d] float32 and mask [batch, max_n] bool."""
    longest = max(len(a) for a in arrays)
    h = torch.zeros(len(arrays), longest, arrays[0].shape[1])
    mask = torch.zeros(len(arrays), longest, dtype=torch.bool)
    for i, a in enumerate(arrays):
        h[i, : len(a)] = torch.from_numpy(a.astype(np.float32))
        mask[i, : len(a)] = True
    return h, mask


def as_activations(
    layer: int, h: torch.Tensor, mask: torch.Tensor, saes: Sequence[SparseAutoencoder] = ()
) -> Activations:
    """One batch as the model hands it to its heads; `saes` (frozen) are encoded for SAE-feature heads."""
    with torch.no_grad():
        features = {sae.config.name: sae.encode(h) for sae in saes}  # name -> [batch, seq, d_sae]
    return Activations(layers={layer: h}, attention_mask=mask, content_mask=mask, features=features)


def fit_token_head(
    head: Head,
    acts: Sequence[np.ndarray],  # per text [n_tokens, d_model]
    targets: Sequence[np.ndarray],  # per text [n_tokens, n_labels] 0/1
    epochs: int = 8,
    lr: float = 2e-3,
    batch_size: int = 32,
    weight_decay: float = 1e-4,
    seed: int = 0,
    saes: Sequence[SparseAutoencoder] = (),
) -> list[float]:
    """Class-weighted multi-label BCE over text tokens; returns the loss per epoch. Batches hold texts of similar
    length (sorted with a random jitter each epoch, then shuffled), so tweets are not padded to a code file's length."""
    rng = np.random.default_rng(seed)
    lengths = np.array([len(a) for a in acts], dtype=np.float64)
    y_all = np.concatenate(targets)
    pos = y_all.sum(axis=0)
    pos_weight = torch.from_numpy(np.sqrt((len(y_all) - pos) / np.maximum(pos, 1.0))).float().clamp(1.0, 50.0)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    layer = head.config.layer
    history = []
    for _ in range(epochs):
        total, count = 0.0, 0
        order = np.argsort(lengths + rng.uniform(0, 8, len(acts)), kind="stable")
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for b in rng.permutation(len(batches)):
            batch = batches[b]
            h, mask = pad_batch([acts[i] for i in batch])
            y, _ = pad_batch([targets[i] for i in batch])
            logits = head(as_activations(layer, h, mask, saes))  # [batch, seq, labels]
            loss = loss_fn(logits, y)[mask].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
    return history


def token_logits(
    head: Head, acts: Sequence[np.ndarray], batch_size: int = 64, saes: Sequence[SparseAutoencoder] = ()
) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for at in range(0, len(acts), batch_size):
            chunk = acts[at : at + batch_size]
            h, mask = pad_batch(chunk)
            logits = head(as_activations(head.config.layer, h, mask, saes))
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


def standardisation(acts: Sequence[np.ndarray], eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (mean, 1 / (std + eps)) over every token of per-text `acts` ([n_i, d_model] each), accumulated in
    float64 one text at a time (no concatenated copy); the buffers of a `StandardisedHead`."""
    total = np.zeros(acts[0].shape[1])
    squares = np.zeros(acts[0].shape[1])
    count = 0
    for a in acts:
        a64 = np.asarray(a, dtype=np.float64)
        total += a64.sum(axis=0)
        squares += (a64 * a64).sum(axis=0)
        count += len(a64)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean * mean, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(1.0 / (std + eps)).float()


def platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling with scikit-learn: p = sigmoid(a * logit + c) fitted on held-out data; returns (a, c)."""
    if len(np.unique(y)) < 2:
        return 1.0, 0.0  # nothing to calibrate against: keep the logits as they are
    model = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1).astype(np.float64), y.astype(int))
    return max(float(model.coef_[0, 0]), 1e-3), float(model.intercept_[0])


def fold_platt(head: Head, column: int, a: float, c: float) -> None:
    """Scale label `column` of a linear readout so that sigmoid(logit) is the calibrated probability."""
    with torch.no_grad():
        head.weight[column] *= a
        head.bias[column] = head.bias[column] * a + c


def best_f1_threshold(probs: np.ndarray, y: np.ndarray, low: float = 0.05, high: float = 0.95) -> tuple[float, float]:
    """The threshold in [low, high] maximising F1 on the PR curve (scikit-learn); returns (threshold, f1)."""
    precision, recall, thresholds = precision_recall_curve(y.astype(int), probs)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    inside = (thresholds >= low) & (thresholds <= high)
    if not inside.any():
        return 0.5, 0.0
    best = int(np.argmax(np.where(inside, f1, -1.0)))
    return float(thresholds[best]), float(f1[best])


def threshold_at(scores: np.ndarray, kinds: np.ndarray, fpr: float, per_kind: bool) -> float:
    """The score at which negatives are flagged at rate `fpr`: pooled, or for every kind (`kinds`: [n] source name
    of each negative row) at once, the largest of the kinds' quantiles."""
    if not per_kind:
        return float(np.quantile(scores, 1.0 - fpr))
    return max(float(np.quantile(scores[kinds == k], 1.0 - fpr)) for k in np.unique(kinds))


CAL_FOLDS = 5  # category thresholds: out-of-fold scores of every train row (5 x the rows of a 20 % share)


def row_roles(parts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per train row of category parts (each with `.source` and `.y`), in order: ([n] bool, a negative-role source's
    row; [n] the row's source name), what `calibrate_category` reads to set per-kind thresholds."""
    negative = np.concatenate([np.full(len(p.y), p.source.role == "negative") for p in parts])
    return negative, np.concatenate([np.full(len(p.y), p.source.name) for p in parts])


@dataclass
class PooledSource:
    """A category source's train part as one row per text: pooled activations, or pooled SAE codes."""

    source: Any  # training.category_sources.CategorySource
    x: np.ndarray  # [n, features]
    y: np.ndarray  # [n] 0/1


def fit_pooled_classifier(data: Sequence[Any], make: Callable[[], Any], seed: int, weights: np.ndarray):
    """A scikit-learn pipeline (`make()`) on every part's pooled rows (`.x`, `.y`) with sample `weights`, and the
    out-of-fold decision scores of every row it was fitted on: (fitted pipeline, oof [n], y [n], negative [n] bool,
    kinds [n]), what `calibrate_category` needs."""
    x = np.concatenate([p.x for p in data])  # [n, features]
    y = np.concatenate([p.y for p in data])
    negative, kinds = row_roles(data)

    def fit_score(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        clf = make().fit(x[train_rows], y[train_rows], logisticregression__sample_weight=weights[train_rows])
        return clf.decision_function(x[test_rows])

    oof = out_of_fold(y, seed, fit_score)
    return make().fit(x, y, logisticregression__sample_weight=weights), oof, y, negative, kinds


def out_of_fold(
    y: np.ndarray,  # [n] 0/1 labels of every train row
    seed: int,
    fit_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """[n] score of every row by a model fitted without it: `fit_score(train_rows, test_rows)` -> scores of test_rows,
    once per stratified fold. A threshold at 1 % FPR on ~600 documents is set by the ~6th highest, not the first."""
    scores = np.empty(len(y), dtype=np.float64)
    folds = StratifiedKFold(CAL_FOLDS, shuffle=True, random_state=seed)
    for train_rows, test_rows in folds.split(np.zeros((len(y), 1)), y):
        scores[test_rows] = fit_score(train_rows, test_rows)
    return scores


def split_negatives(parts: Sequence[Any], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Rows of the pooled negatives of category train parts (each with `.source.role` and `.y`): (fit + threshold
    part, held-out evaluation part)."""
    rng = np.random.default_rng(seed)
    n = sum(len(p.y) for p in parts if p.source.role == "negative")
    order = rng.permutation(n)
    cut = int(n * share)
    return sorted(order[cut:].tolist()), sorted(order[:cut].tolist())


def heldout_row(
    role: str,
    scores: np.ndarray,
    threshold: float,
    negative_scores: np.ndarray,
    negative_kinds: np.ndarray | None = None,  # [n] kind of each negative row: adds AUROC vs clean documents
) -> dict[str, object]:
    """One held-out source's row in a leave-one-source-out table: a positive source's recall at the threshold, its
    AUROC against held-out negatives (and against the clean `documents` among them) and their FPR; a look-alike
    source's FPR."""
    row: dict[str, object] = {"role": role, "n": len(scores)}
    if role == "positive":
        row.update(recall=round(float((scores >= threshold).mean()), 4), auroc=auroc_against(scores, negative_scores),
                   heldout_negative_fpr=round(float((negative_scores >= threshold).mean()), 4))  # fmt: skip
        if negative_kinds is not None and (negative_kinds == "documents").any():
            row["auroc_documents"] = auroc_against(scores, negative_scores[negative_kinds == "documents"])
    else:
        row["fpr"] = round(float((scores >= threshold).mean()), 4)
    return row


def twin_aurocs(sources: Sequence[Any], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """AUROC of each positive source's scores against the look-alike sources of its own family, pooled: the benign
    twins written with the same words (`pw_pairs_harm` vs `pw_pairs_benign`, `pw_direct` vs `pw_benign_meta`).
    `sources`: category sources (`.name`, `.role`, `.family`); `scores`: [n] scores per source name, all from one
    model (held out together, a family's sources share their fold's model). Where it is low, no threshold both keeps
    recall high and leaves the twins unflagged: the features, not the threshold, are the limit."""
    out: dict[str, float] = {}
    for s in sources:
        twins = [scores[t.name] for t in sources
                 if t.family and t.family == s.family and t.role == "lookalike" and t.name in scores]  # fmt: skip
        if s.role == "positive" and s.name in scores and twins:
            out[s.name] = auroc_against(scores[s.name], np.concatenate(twins))
    return out


THRESHOLD_FOLDS = 2  # leave-one-out folds: one model per half of the kept negatives, thresholded on the other half


def threshold_halves(keep: Sequence[int], kinds: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, threshold rows) of the kept negatives, halves stratified by kind ([n_negatives] `kinds`). A fold's
    model fits one half (with the fold's positives and look-alikes) and sets its threshold on the other: the way the
    served head's threshold is set (on scores of rows it did not fit, `out_of_fold`). A threshold set on rows the model
    fitted sits lower, looser on unseen negatives, the more so the more the candidate can fit."""
    rows = np.asarray(keep)
    folds = StratifiedKFold(THRESHOLD_FOLDS, shuffle=True, random_state=seed)
    return [(rows[a], rows[b]) for a, b in folds.split(np.zeros((len(rows), 1)), kinds[rows])]


def ensemble_row(
    role: str,
    margins: Sequence[np.ndarray],  # per half-model: [n] held-out source's scores less that model's threshold
    negative_margins: Sequence[np.ndarray],  # per half-model: [n_held] held-out negatives' margins
    negative_kinds: np.ndarray | None = None,
) -> dict[str, object]:
    """`heldout_row` for a fold of half-models (`threshold_halves`): recall and FPRs are the mean over the models of
    each one's own rate at its own threshold; AUROCs are of the mean margin."""
    row = heldout_row(role, np.mean(margins, axis=0), 0.0, np.mean(negative_margins, axis=0), negative_kinds)
    rate = float(np.mean([(m >= 0).mean() for m in margins]))
    if role == "positive":
        row["recall"] = round(rate, 4)
        row["heldout_negative_fpr"] = round(float(np.mean([(m >= 0).mean() for m in negative_margins])), 4)
    else:
        row["fpr"] = round(rate, 4)
    return row


def negative_split(data: Sequence[Any], seed: int) -> tuple[list[Any], np.ndarray, list[int], list[int]]:
    """The negative-role parts of category train parts, each row's kind ([n] source name), and the row split of
    `split_negatives` (30 % held out for evaluation)."""
    negatives = [p for p in data if p.source.role == "negative"]
    kinds = np.concatenate([np.full(len(p.y), p.source.name) for p in negatives])
    keep, held = split_negatives(negatives, 0.3, seed)
    return negatives, kinds, keep, held


def loso_folds(data: Sequence[Any]) -> Iterator[tuple[list[Any], list[Any]]]:
    """(a family's positive and look-alike parts, the positive and look-alike parts outside it) for every family: one
    fit per family serves each of its parts."""
    families: dict[str, list[Any]] = {}
    for part in data:
        if part.source.role != "negative":
            families.setdefault(part.source.group, []).append(part)
    for group, tests in families.items():
        yield tests, [p for p in data if p.source.group != group and p.source.role != "negative"]


def loso_table(
    data: Sequence[Any],
    rows: Callable[[Any], list],  # a part -> its rows, one per text, in the form `fit` and `score` take
    fit: Callable[[list[Any], list], Any],  # (positive and look-alike parts outside the family, negative rows) -> model
    score: Callable[[Any, list], np.ndarray],  # (model, rows) -> [n] scores
    target_fpr: float,
    seed: int,
    per_kind: bool,
    families: Collection[str] | None = None,
) -> dict[str, dict]:
    """Leave one family out (`loso_folds`) for any category head type, one row per held-out part (`ensemble_row`,
    plus `auroc_twins` where the family has look-alike twins). Each fold fits two half-models (`threshold_halves`):
    each fits the fold's parts and one half of the kept negatives and sets its threshold on the other half; held-out
    parts and the held-out negatives (`negative_split`) are scored against both. `families`: hold out only these
    (`CategorySource.group`; a costly head measured where it matters), every other fold skipped."""
    negatives, neg_kind, keep, held = negative_split(data, seed)
    neg = [r for p in negatives for r in rows(p)]
    held_rows = [neg[i] for i in held]
    out: dict[str, dict] = {}
    held_scores: dict[str, np.ndarray] = {}
    for tests, others in loso_folds(data):
        if families is not None and tests[0].source.group not in families:
            continue
        models, negative_margins = [], []
        for fit_rows, threshold_rows in threshold_halves(keep, neg_kind, seed):
            model = fit(others, [neg[i] for i in fit_rows])
            threshold = threshold_at(score(model, [neg[i] for i in threshold_rows]), neg_kind[threshold_rows],
                                     target_fpr, per_kind)  # fmt: skip
            models.append((model, threshold))
            negative_margins.append(score(model, held_rows) - threshold)
        for test in tests:
            margins = [score(model, rows(test)) - threshold for model, threshold in models]
            held_scores[test.source.name] = np.mean(margins, axis=0)
            out[test.source.name] = ensemble_row(test.source.role, margins, negative_margins, neg_kind[held])
    for name, value in twin_aurocs([p.source for p in data], held_scores).items():
        out[name]["auroc_twins"] = value
    return out


def calibrate_category(
    head: Head,
    w: np.ndarray,  # [d_model] raw weights
    b: float,
    logits: np.ndarray,  # [n] raw logits of the calibration share
    y: np.ndarray,  # [n] 0/1
    negative: np.ndarray,  # [n] bool: rows of negative-role sources
    kinds: np.ndarray,  # [n] source name of each row
    target_fpr: float,
    per_kind: bool,
) -> tuple[float, dict[str, float]]:
    """Platt scaling (a 1-D logistic regression) on the calibration share, folded into a one-label head's weight and
    bias; the threshold at `target_fpr` on the share's negatives; (threshold, calibration info)."""
    platt = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), y)
    a, c0 = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy((a * w).astype(np.float32)).reshape(head.weight.shape))
        head.bias.fill_(a * b + c0)
    probs = 1.0 / (1.0 + np.exp(-(a * logits + c0)))
    threshold = threshold_at(probs[negative], kinds[negative], target_fpr, per_kind)
    info = {"calibration_auroc": round(float(roc_auc_score(y, probs)), 4),
            "calibration_recall": round(float((probs[y == 1] >= threshold).mean()), 4),
            "calibration_negatives": int(negative.sum()), "platt_a": round(a, 4), "platt_c": round(c0, 4)}  # fmt: skip
    return threshold, info
