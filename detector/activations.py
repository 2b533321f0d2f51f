"""activations: the one object every head reads, computed once per batch by the truncated host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from probeguard.detector.errors import ConfigError


@dataclass(frozen=True)
class Activations:
    layers: Mapping[int, torch.Tensor]  # layer k -> [batch, seq, d_model] residual stream after k blocks
    attention_mask: torch.Tensor  # [batch, seq] bool: real tokens, special tokens included
    content_mask: torch.Tensor  # [batch, seq] bool: text tokens only (no BOS/CLS/SEP, no padding)
    # SAE name -> codes [batch, seq, d_sae], computed once per batch for every SAE an active head reads
    features: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def layer(self, k: int) -> torch.Tensor:
        try:
            return self.layers[k]
        except KeyError:
            raise ConfigError(f"layer {k} was not captured (captured: {sorted(self.layers)})") from None

    def codes(self, sae: str) -> torch.Tensor:
        try:
            return self.features[sae]
        except KeyError:
            raise ConfigError(f"SAE {sae!r} was not encoded (encoded: {sorted(self.features)})") from None


def content_mask_from(attention_mask: torch.Tensor, prefix: int, suffix: int) -> torch.Tensor:
    """[batch, seq] bool mask of text tokens in right-padded rows `prefix specials + text + suffix specials`."""
    seq = attention_mask.shape[1]
    positions = torch.arange(seq, device=attention_mask.device).unsqueeze(0)  # [1, seq]
    lengths = attention_mask.sum(dim=1, keepdim=True)  # [batch, 1]
    return (positions >= prefix) & (positions < lengths - suffix)
