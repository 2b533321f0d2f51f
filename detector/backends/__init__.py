"""Backends run a `TokenBatch` through the truncated host and the heads: `forward(batch) -> {head: logits}`."""

from detector.backends.base import Backend, HeadLogits
from detector.backends.torch import TorchBackend

__all__ = ["Backend", "HeadLogits", "TorchBackend"]
