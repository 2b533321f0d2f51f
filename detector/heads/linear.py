"""Linear probe heads: per-token (multi-label PII, with a lookahead window) and per-sequence (pooled)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.heads.base import Head, HeadConfig
from probeguard.detector.heads.pooling import POOLINGS, full_window_max, lookahead_stack, pool
from probeguard.detector.heads.registry import register_head


@dataclass(frozen=True)
class TokenLinearConfig(HeadConfig):
    # Following tokens each token's head also reads; a causal host needs right context to see a whole entity.
    lookahead: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.lookahead, int) or not 0 <= self.lookahead <= 32:
            raise ConfigError(f"head {self.name}: lookahead must be an integer in [0, 32], got {self.lookahead!r}")


@register_head("token_linear")
class TokenLinearHead(Head):
    """logits[b, i, l] = bias[l] + sum_j weight[l, j] . h[b, i + j]   for j in 0..lookahead."""

    config_class = TokenLinearConfig
    level = "token"

    def __init__(self, config: TokenLinearConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        n = len(config.labels)
        self.weight = nn.Parameter(torch.zeros(n, config.lookahead + 1, d_model))  # [labels, w + 1, d_model]
        self.bias = nn.Parameter(torch.zeros(n))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        h = acts.layer(self.config.layer)  # [batch, seq, d_model]
        stacked = lookahead_stack(h, acts.content_mask, self.config.lookahead)  # [batch, seq, w + 1, d_model]
        return torch.einsum("bswd,lwd->bsl", stacked, self.weight) + self.bias  # [batch, seq, labels]


@dataclass(frozen=True)
class SequenceLinearConfig(HeadConfig):
    # mean/max are robust on a causal host; last is cheap but weak; rolling-mean-max finds a short harmful run in a
    # long benign text.
    pooling: str = "mean"
    # Tokens per run for rolling-mean-max (ignored by the other poolings).
    window: int = 16
    # More layers pooled alike and concatenated after `layer`'s: free when the host runs past them for another head
    # (layers 6 + 8 for unsafe, while the PII head reads 8), at the cost of a d_model-wide weight per layer.
    extra_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in POOLINGS:
            raise ConfigError(f"head {self.name}: pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"head {self.name}: window must be a positive integer, got {self.window!r}")
        extra = self.extra_layers
        well_typed = all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in extra)
        if not well_typed or len(set(self.layers_read)) != len(self.layers_read):
            raise ConfigError(f"head {self.name}: extra_layers must be distinct non-negative integers other than "
                              f"layer {self.layer}, got {list(extra)!r}")  # fmt: skip

    @property
    def layers_read(self) -> tuple[int, ...]:
        return (self.layer, *self.extra_layers)


@register_head("sequence_linear")
class SequenceLinearHead(Head):
    """logits[b, l] = bias[l] + weight[l] . concat over layers k of pool(h_k[b, text tokens])."""

    config_class = SequenceLinearConfig
    level = "sequence"

    def __init__(self, config: SequenceLinearConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        width = d_model * len(config.layers_read)
        self.weight = nn.Parameter(torch.zeros(len(config.labels), width))  # [labels, n_layers * d_model]
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        c = self.config
        pooled = torch.cat([pool(acts.layer(k), acts.content_mask, c.pooling, c.window)  # [batch, d_model] each
                            for k in c.layers_read], dim=-1)  # [batch, n_layers * d_model]  # fmt: skip
        return pooled @ self.weight.T + self.bias  # [batch, labels]


@dataclass(frozen=True)
class WindowMaxConfig(HeadConfig):
    # Tokens per run: long enough to hold a short instruction, short enough that a long document cannot dilute it.
    window: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise ConfigError(f"head {self.name}: window must be a positive integer, got {self.window!r}")


@register_head("window_max_linear")
class WindowMaxHead(Head):
    """logits[b, l] = bias[l] + max over runs r of `window` tokens of weight[l] . mean(h[b, r]).

    A linear probe scored on every run and maxed, not on the text's mean: one injected instruction inside a long
    e-mail keeps its score however long the e-mail is. Linear, so the run mean is taken of the token logits.
    """

    config_class = WindowMaxConfig
    level = "sequence"

    def __init__(self, config: WindowMaxConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.weight = nn.Parameter(torch.zeros(len(config.labels), d_model))  # [labels, d_model]
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        h = acts.layer(self.config.layer)  # [batch, seq, d_model]
        token_logits = h @ self.weight.T  # [batch, seq, labels]
        return full_window_max(token_logits, acts.content_mask, self.config.window) + self.bias  # [batch, labels]
