"""Layer sweep: a cheap probe per layer on validation data; choose the smallest layer within a tolerance of the best.

Every layer skipped is latency saved: the host only runs to the deepest layer a head reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detector.heads import SequenceLinearConfig, SequenceLinearHead, TokenLinearConfig, TokenLinearHead
from detector.pipeline import sigmoid
from training import fit
from training.evaluate import auroc


@dataclass
class SweepResult:
    layers: list[int]
    scores: dict[str, list[float]] = field(default_factory=dict)  # head -> validation score per layer
    metric: dict[str, str] = field(default_factory=dict)  # head -> what the score is
    chosen: dict[str, int] = field(default_factory=dict)
    tolerance: float = 0.01

    def to_dict(self) -> dict[str, object]:
        return {"layers": self.layers, "scores": self.scores, "metric": self.metric, "chosen": self.chosen,
                "tolerance": self.tolerance}  # fmt: skip


def choose_layer(layers: Sequence[int], scores: Sequence[float], tolerance: float) -> int:
    """The smallest layer whose score is within `tolerance` of the best."""
    best = max(scores)
    return min(k for k, s in zip(layers, scores, strict=True) if s >= best - tolerance)


def token_macro_f1(
    layer: int,
    labels: Sequence[str],
    train_acts: Sequence[np.ndarray],
    train_y: Sequence[np.ndarray],
    val_acts: Sequence[np.ndarray],
    val_y: Sequence[np.ndarray],
    lookahead: int,
    epochs: int,
    seed: int,
) -> float:
    """Fit a token head at `layer`; mean over labels of the best token-level F1 on validation."""
    torch.manual_seed(seed)
    d_model = train_acts[0].shape[1]
    head = TokenLinearHead(TokenLinearConfig(name="sweep", layer=layer, labels=tuple(labels), lookahead=lookahead),
                           d_model)  # fmt: skip
    fit.fit_token_head(head, train_acts, train_y, epochs=epochs, seed=seed)
    logits = np.concatenate(fit.token_logits(head, val_acts))
    y = np.concatenate(val_y)
    f1s = [fit.best_f1_threshold(sigmoid(logits[:, c]), y[:, c])[1] for c in range(len(labels)) if y[:, c].any()]
    return float(np.mean(f1s))


def category_auroc(
    layer: int,
    train_acts: Sequence[np.ndarray],
    train_y: np.ndarray,
    val_acts: Sequence[np.ndarray],
    val_y: np.ndarray,
    pooling: str,
) -> float:
    """Pooled logistic probe at `layer`; validation AUROC."""
    d_model = train_acts[0].shape[1]
    head = SequenceLinearHead(SequenceLinearConfig(name="sweep", layer=layer, labels=("c",), pooling=pooling), d_model)
    fit.fit_sequence_head(head, fit.pooled_features(train_acts, pooling, 16), train_y.reshape(-1, 1).astype(np.float32))
    with torch.no_grad():
        scores = (fit.pooled_features(val_acts, pooling, 16) @ head.weight.T + head.bias)[:, 0].numpy()
    return auroc(scores, val_y)


def plot_sweep(result: SweepResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, scores in result.scores.items():
        ax.plot(result.layers, scores, marker="o", label=f"{name} ({result.metric[name]})")
        ax.axvline(result.chosen[name], linestyle=":", color=ax.lines[-1].get_color())
    ax.set_xlabel("layer (residual stream after N blocks)")
    ax.set_ylabel("validation score")
    ax.set_title(f"Layer sweep (dotted: chosen layer, tolerance {result.tolerance})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
