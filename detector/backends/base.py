"""The one narrow interface between the pipeline and whatever runs the model."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from probeguard.detector.batching import PassCost
from probeguard.detector.tokenize import TokenBatch

# head name -> logits: token heads [batch, seq, labels], sequence heads [batch, labels]; float32.
HeadLogits = dict[str, np.ndarray]


class Backend(Protocol):
    name: str
    # What a forward pass costs here: whether rows are padded, the per-call overhead, the largest batch. The pipeline
    # plans its passes with it (detector.batching), and the service's micro-batcher counts work with it.
    pass_cost: PassCost

    def forward(self, batch: TokenBatch) -> HeadLogits: ...
