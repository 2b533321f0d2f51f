"""Window-max category heads: a linear probe scored on every run of WINDOW tokens, the text's score the best run's.

Mean pooling dilutes one injected instruction by the length of the document around it. Here each text is a bag of
runs; the probe is fitted multiple-instance style (a positive text needs one positive run, every run of a clean text
is negative): start from the mean-pooled fit, then refit on each positive text's best run and each clean text's
hardest runs, a few rounds. Training bags use runs every STRIDE tokens; scores for thresholds and calibration use
every run, exactly as the served `WindowMaxHead` does. Leave-one-source-out mirrors `category_select.loso`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from probeguard.detector.heads import WindowMaxConfig, WindowMaxHead
from probeguard.training.category_sources import CategorySource
from probeguard.training.fit import (
    calibrate_category,
    loso_table,
    out_of_fold,
    row_roles,
)

WINDOW = 16  # tokens per run (the served head's window)
STRIDE = 8  # runs in a training bag start every STRIDE tokens
ROUNDS = 3  # multiple-instance refits after the mean-pooled start
HARD_RUNS = 4  # a clean text contributes its highest-scoring runs


@dataclass
class WindowedSource:
    source: CategorySource
    acts: list[np.ndarray]  # per text [n_tokens, d_model] (memory-mapped views)
    runs: list[np.ndarray]  # per text [n_runs, d_model] run means every STRIDE tokens
    y: np.ndarray  # [n] 0/1


def run_means(a: np.ndarray, window: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """[n, d] -> [k, d]: means of full runs starting every `stride` tokens and the last run; one run if n <= window."""
    n = len(a)
    if n <= window:
        return a.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    csum = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0, dtype=np.float64)])
    starts = np.unique(np.r_[np.arange(0, n - window + 1, stride), n - window])
    return ((csum[starts + window] - csum[starts]) / window).astype(np.float32)


def served_scores(acts: Sequence[np.ndarray], w: np.ndarray, b: float, window: int = WINDOW) -> np.ndarray:
    """[n] logits as `WindowMaxHead` computes them: every full run's mean logit (the whole text if shorter), max."""
    out = np.empty(len(acts))
    for i, a in enumerate(acts):
        z = np.asarray(a, dtype=np.float64) @ w  # [n_tokens]
        if len(z) <= window:
            out[i] = z.mean() + b
        else:
            csum = np.r_[0.0, np.cumsum(z)]
            out[i] = (csum[window:] - csum[:-window]).max() / window + b
    return out


def windowed_sources(sources: Sequence[CategorySource], harvest, layer: int) -> list[WindowedSource]:
    out = []
    for s in sources:
        store, _ = harvest([r.text for r in s.train], f"harvest {s.category}/{s.name}")
        acts = store.per_text(layer)
        out.append(
            WindowedSource(s, acts, [run_means(np.asarray(a)) for a in acts], np.array([r.label for r in s.train]))
        )
    return out


def _fit(x: np.ndarray, y: np.ndarray, scaler: StandardScaler, c: float) -> tuple[np.ndarray, float]:
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(scaler.transform(x), y)
    w = lr.coef_[0] / scaler.scale_
    return w, float(lr.intercept_[0] - (lr.coef_[0] * scaler.mean_ / scaler.scale_).sum())


def fit_mil(positive: list[np.ndarray], negative: list[np.ndarray], c: float) -> tuple[np.ndarray, float]:
    """(w [d_model], b) in activation space from bags of runs: positives' best run, negatives' hardest runs."""
    scaler = StandardScaler().fit(np.concatenate(positive[:2000] + negative[:2000]))
    means = np.stack([r.mean(axis=0) for r in positive] + [r.mean(axis=0) for r in negative])
    w, b = _fit(means, np.r_[np.ones(len(positive)), np.zeros(len(negative))], scaler, c)
    for _ in range(ROUNDS):
        best = [r[int(np.argmax(r @ w))] for r in positive]
        hard = [r[np.argsort(-(r @ w))[:HARD_RUNS]] for r in negative]
        x = np.concatenate([np.stack(best), *hard])
        w, b = _fit(x, np.r_[np.ones(len(best)), np.zeros(len(x) - len(best))], scaler, c)
    return w, b


def _bags(parts: Sequence[WindowedSource]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    positive = [r for p in parts for r, y in zip(p.runs, p.y, strict=True) if y == 1]
    return positive, [r for p in parts for r, y in zip(p.runs, p.y, strict=True) if y == 0]


def loso_window(
    data: Sequence[WindowedSource], target_fpr: float, seed: int, c: float, per_kind: bool
) -> dict[str, dict]:
    """`fit.loso_table` for window-max heads: rows are (token activations, run means) pairs; fitted on run means
    (`fit_mil`), scored as served (`served_scores`)."""

    def fit_model(others: list[WindowedSource], negatives: list) -> tuple[np.ndarray, float]:
        positive, benign = _bags(others)
        return fit_mil(positive, benign + [runs for _, runs in negatives], c)

    def score(model: tuple[np.ndarray, float], rows: list) -> np.ndarray:
        return served_scores([acts for acts, _ in rows], *model)

    return loso_table(data, lambda p: list(zip(p.acts, p.runs, strict=True)), fit_model, score, target_fpr, seed,
                      per_kind)  # fmt: skip


def fit_window_category(
    name: str, layer: int, data: Sequence[WindowedSource], target_fpr: float, c: float, seed: int, per_kind: bool
) -> tuple[WindowMaxHead, float, dict[str, float]]:
    """The served head: MIL fit on every source's train part; Platt scaling and the threshold at `target_fpr` on the
    negatives come from out-of-fold served scores of every train text (`fit.out_of_fold`)."""
    acts = [a for part in data for a in part.acts]  # [n] of [seq, d_model]
    runs = [r for part in data for r in part.runs]
    y = np.concatenate([part.y for part in data])
    negative, kinds = row_roles(data)

    def fit_rows(rows: np.ndarray) -> tuple[np.ndarray, float]:
        return fit_mil([runs[i] for i in rows if y[i] == 1], [runs[i] for i in rows if y[i] == 0], c)

    def fit_score(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        return served_scores([acts[i] for i in test_rows], *fit_rows(train_rows))

    oof = out_of_fold(y, seed, fit_score)
    w, b = fit_rows(np.arange(len(y)))
    head = WindowMaxHead(WindowMaxConfig(name=name, layer=layer, labels=(name,), window=WINDOW), len(w))
    threshold, info = calibrate_category(head, w, b, oof, y, negative, kinds, target_fpr, per_kind)
    return head, threshold, info
