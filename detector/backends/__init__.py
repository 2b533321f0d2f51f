"""Backends run a `TokenBatch` through the truncated host and the heads: `forward(batch) -> {head: logits}`."""

from probeguard.detector.backends.base import Backend, HeadLogits
from probeguard.detector.backends.torch import TorchBackend

__all__ = ["Backend", "HeadLogits", "TorchBackend"]
