"""Training data: span examples (PII) and labelled texts (categories), with loaders that report bad rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED_UNSAFE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "unsafe"


@dataclass(frozen=True)
class SpanExample:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (label, start, end)


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int  # 1 = in the category (e.g. unsafe), 0 = not


def load_instructions(path: Path, label: int) -> list[LabelledText]:
    """`[{"instruction": str, ...}]` files of shared/data/unsafe (harmful -> 1, harmless -> 0)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({type(exc).__name__})") from None
    out = []
    for i, row in enumerate(rows):
        text = row.get("instruction") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: row {i} has no instruction string")
        out.append(LabelledText(text, label))
    return out


def token_targets(offsets: np.ndarray, spans: Sequence[tuple[str, int, int]], labels: Sequence[str]) -> np.ndarray:
    """[n_tokens, n_labels] 0/1: a token is in a span when its non-space characters overlap the span."""
    index = {label: i for i, label in enumerate(labels)}
    targets = np.zeros((len(offsets), len(labels)), dtype=np.float32)
    for label, start, end in spans:
        col = index[label]
        for t, (s, e) in enumerate(offsets):
            if s < end and e > start and e > s:
                targets[t, col] = 1.0
    return targets
