"""The one narrow interface between the pipeline and whatever runs the model."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from detector.tokenize import TokenBatch

# head name -> logits: token heads [batch, seq, labels], sequence heads [batch, labels]; float32.
HeadLogits = dict[str, np.ndarray]


class Backend(Protocol):
    name: str

    def forward(self, batch: TokenBatch) -> HeadLogits: ...
