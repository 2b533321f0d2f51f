"""The one narrow interface between the pipeline and whatever runs the model."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from probeguard.detector.batching import PassCost
from probeguard.detector.tokenize import TokenBatch

# head name -> logits: token heads [batch, seq, labels], sequence heads [batch, labels]; float32. With `layers`, also
# layer_output_name(k) -> the activations [batch, seq, d_model] the heads read at layer k.
HeadLogits = dict[str, np.ndarray]


def output_name(head: str) -> str:
    """A head's output in a served graph (and its key in HeadLogits is the bare head name)."""
    return f"head_{head}"  # unique: "mean"/"max" would clash with names inside the graph


def layer_output_name(layer: int) -> str:
    """The activations at `layer` as a graph output and a HeadLogits key."""
    return f"layer_{layer}"


class Backend(Protocol):
    name: str
    # What a forward pass costs here: whether rows are padded, the per-call overhead, the largest batch. The pipeline
    # plans its passes with it (detector.batching), and the service's micro-batcher counts work with it.
    pass_cost: PassCost

    def forward(self, batch: TokenBatch, layers: bool = False) -> HeadLogits: ...
