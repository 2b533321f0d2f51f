"""A small non-linear token head: one hidden layer over the same lookahead window a linear token head reads.

A linear head can only add evidence; "Jordan" after "Michael" and "Jordan" after "River" need an interaction between
the word and its context. One hidden layer of `hidden` units is that interaction at a cost of
(lookahead + 1) x d_model x hidden multiply-adds per token: 5 x 640 x 64 = 0.2 M, under 1 % of eight Gemma 3 270M
blocks (about 48 M per token). Inputs are standardised with per-dimension statistics fixed at training time (the
residual stream has a few dimensions hundreds of times larger than the rest, which would saturate the hidden units).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probeguard.detector.activations import Activations
from probeguard.detector.heads.base import StandardisedHead, check_int_range
from probeguard.detector.heads.linear import TokenLinearConfig
from probeguard.detector.heads.pooling import lookahead_stack
from probeguard.detector.heads.registry import register_head


@dataclass(frozen=True)
class TokenMLPConfig(TokenLinearConfig):
    # Hidden units: 64 is ~0.4 % of the truncated host's FLOPs per token; wider overfits the few thousand real texts.
    hidden: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int_range(self, "hidden", 1, 1024)


@register_head("token_mlp")
class TokenMLPHead(StandardisedHead):
    """logits[b, i] = weight . gelu(sum_j w1[:, j] . z[b, i + j] + b1) + bias, z = (h - center) * scale."""

    config_class = TokenMLPConfig
    level = "token"

    def __init__(self, config: TokenMLPConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        width = config.lookahead + 1
        self.w1 = nn.Parameter(torch.randn(config.hidden, width, d_model) / (width * d_model) ** 0.5)  # [H, w+1, d]
        self.b1 = nn.Parameter(torch.zeros(config.hidden))  # [H]
        self.weight = nn.Parameter(torch.zeros(len(config.labels), config.hidden))  # [labels, H]: Platt folds here
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        h = acts.layer(self.config.layer)  # [batch, seq, d_model]
        z = (h - self.center) * self.scale  # [batch, seq, d_model]
        stacked = lookahead_stack(z, acts.content_mask, self.config.lookahead)  # [batch, seq, w + 1, d_model]
        hidden = torch.nn.functional.gelu(torch.einsum("bswd,hwd->bsh", stacked, self.w1) + self.b1)  # [b, s, H]
        return hidden @ self.weight.T + self.bias  # [batch, seq, labels]
