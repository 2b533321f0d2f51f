"""SAE-feature heads: a sparse autoencoder's encoder (JumpReLU or TopK) then a sparse linear classifier on its codes.

The encoder follows SAELens conventions (`W_enc [d_model, d_sae]`, `b_enc`, `b_dec`, JumpReLU `threshold`), so an
external SAE in SAELens format can be loaded into this head by `training` and served unchanged. The classifier is
trained with an L1 penalty, so most of its weights are exactly zero; it is stored dense for a simple graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from detector.activations import Activations
from detector.errors import ConfigError
from detector.heads.base import Head, HeadConfig
from detector.heads.pooling import POOLINGS, pool
from detector.heads.registry import register_head


@dataclass(frozen=True)
class SAEFeatureConfig(HeadConfig):
    # "token" scores every token (PII spans); "sequence" pools codes over the text (categories).
    level: str = "sequence"
    # Dictionary size; wider finds finer features, costs d_model * d_sae per token.
    d_sae: int = 4096
    # jumprelu: per-feature learned threshold (Gemma Scope style); topk: exactly k active features per token.
    activation: str = "topk"
    # Active features per token for topk (ignored by jumprelu).
    k: int = 32
    # SAELens: subtract b_dec from the input before encoding.
    apply_b_dec_to_input: bool = True
    # Pooling of codes for level="sequence".
    pooling: str = "max"
    window: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.level not in ("token", "sequence"):
            raise ConfigError(f"head {self.name}: level must be 'token' or 'sequence', got {self.level!r}")
        if self.activation not in ("jumprelu", "topk"):
            raise ConfigError(f"head {self.name}: activation must be 'jumprelu' or 'topk', got {self.activation!r}")
        if not isinstance(self.d_sae, int) or self.d_sae < 1:
            raise ConfigError(f"head {self.name}: d_sae must be a positive integer")
        if self.activation == "topk" and not (isinstance(self.k, int) and 1 <= self.k <= self.d_sae):
            raise ConfigError(f"head {self.name}: k must be in [1, d_sae] for topk")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"head {self.name}: pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")


def sae_encode(
    h: torch.Tensor,
    w_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    threshold: torch.Tensor,
    config: SAEFeatureConfig,
) -> torch.Tensor:
    """[..., d_model] -> codes [..., d_sae] (non-negative, sparse)."""
    x = h - b_dec if config.apply_b_dec_to_input else h
    pre = x @ w_enc + b_enc  # [..., d_sae]
    if config.activation == "jumprelu":
        return torch.where(pre > threshold, pre, torch.zeros_like(pre))
    top = torch.topk(pre, config.k, dim=-1)
    codes = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    return codes


@register_head("sae_feature")
class SAEFeatureHead(Head):
    config_class = SAEFeatureConfig
    level = "sequence"  # per instance: see __init__

    def __init__(self, config: SAEFeatureConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.level = config.level  # type: ignore[misc]
        n, d_sae = len(config.labels), config.d_sae
        self.w_enc = nn.Parameter(torch.zeros(d_model, d_sae))  # [d_model, d_sae]
        self.b_enc = nn.Parameter(torch.zeros(d_sae))  # [d_sae]
        self.b_dec = nn.Parameter(torch.zeros(d_model))  # [d_model]
        self.threshold = nn.Parameter(torch.zeros(d_sae))  # [d_sae]; used by jumprelu only
        self.weight = nn.Parameter(torch.zeros(n, d_sae))  # [labels, d_sae], mostly zeros (L1-trained)
        self.bias = nn.Parameter(torch.zeros(n))  # [labels]

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        return sae_encode(h, self.w_enc, self.b_enc, self.b_dec, self.threshold, self.config)  # type: ignore[arg-type]

    def forward(self, acts: Activations) -> torch.Tensor:
        cfg: SAEFeatureConfig = self.config  # type: ignore[assignment]
        codes = self.encode(acts.layer(cfg.layer))  # [batch, seq, d_sae]
        if cfg.level == "token":
            return codes @ self.weight.T + self.bias  # [batch, seq, labels]
        pooled = pool(codes, acts.content_mask, cfg.pooling, cfg.window)  # [batch, d_sae]
        return pooled @ self.weight.T + self.bias  # [batch, labels]
