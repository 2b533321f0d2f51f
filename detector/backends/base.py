"""The one narrow interface between the pipeline and whatever runs the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from detector.tokenize import TokenBatch

# head name -> logits: token heads [batch, seq, labels], sequence heads [batch, labels]; float32.
HeadLogits = dict[str, np.ndarray]


class Backend(Protocol):
    name: str
    # True: a batch costs rows x longest row (dense padded tensors); False: the sum of row lengths (packed/varlen).
    pads: bool
    # Most rows one forward pass takes; None = bounded by the token budget only.
    max_batch: int | None

    def forward(self, batch: TokenBatch) -> HeadLogits: ...


def batch_cost(backend: Backend, lengths: Sequence[int]) -> int:
    """Tokens one forward pass over rows of these lengths costs on this backend (padding included)."""
    if not lengths:
        return 0
    return len(lengths) * max(lengths) if backend.pads else sum(lengths)
