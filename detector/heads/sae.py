"""SAE-feature heads: a sparse linear classifier on the codes of a named SAE (`detector.sae`).

The SAE is not part of the head: the model encodes each SAE once per batch into `Activations.features`, and any number
of heads read the same codes. The classifier is trained with an L1 penalty, so most of its weights are exactly zero;
it is stored dense for a simple graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.heads.base import Head, HeadConfig
from probeguard.detector.heads.pooling import POOLINGS, pool
from probeguard.detector.heads.registry import register_head


@dataclass(frozen=True)
class SAEFeatureConfig(HeadConfig):
    sae: str = ""  # name of the bundle's SAE whose codes this head reads; its layer must equal `layer`
    d_sae: int = 0  # that SAE's dictionary size (checked against it when the bundle loads)
    # "token" scores every token (PII spans); "sequence" pools codes over the text (categories).
    level: str = "sequence"
    # Pooling of codes for level="sequence".
    pooling: str = "max"
    window: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.sae, str) or not self.sae:
            raise ConfigError(f"head {self.name}: sae must name one of the bundle's SAEs")
        if not isinstance(self.d_sae, int) or isinstance(self.d_sae, bool) or self.d_sae < 1:
            raise ConfigError(f"head {self.name}: d_sae must be a positive integer")
        if self.level not in ("token", "sequence"):
            raise ConfigError(f"head {self.name}: level must be 'token' or 'sequence', got {self.level!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"head {self.name}: pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")


@register_head("sae_feature")
class SAEFeatureHead(Head):
    config_class = SAEFeatureConfig
    level = "sequence"  # per instance: see __init__

    def __init__(self, config: SAEFeatureConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.level = config.level  # type: ignore[misc]
        self.weight = nn.Parameter(torch.zeros(len(config.labels), config.d_sae))  # [labels, d_sae], mostly zeros
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        cfg: SAEFeatureConfig = self.config  # type: ignore[assignment]
        codes = acts.codes(cfg.sae)  # [batch, seq, d_sae]
        if cfg.level == "token":
            return codes @ self.weight.T + self.bias  # [batch, seq, labels]
        pooled = pool(codes, acts.content_mask, cfg.pooling, cfg.window)  # [batch, d_sae]
        return pooled @ self.weight.T + self.bias  # [batch, labels]
