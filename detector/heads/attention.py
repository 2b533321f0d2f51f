"""An attention-pooled sequence head: each of a few learned queries weighs the text's tokens, and the text's score is
the weighted sum of per-token scores.

Mean pooling averages a harmful request with the words around it and a long e-mail dilutes an injected line;
max pooling follows one loud token. Here the head learns *which* tokens to listen to (a softmax over the text per
query) and *what* they say (a per-token linear score), as in the attention probes of production classifiers
(softmax-weighted per-token scores, several heads). Cost per token: 2 x heads x d_model multiply-adds (8 x 640 = 5 k
for 4 heads, ~0.01 % of eight Gemma 3 270M blocks). Inputs are standardised with per-dimension statistics fixed at
training time (a few residual dimensions are hundreds of times larger than the rest and would own the softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probeguard.detector.activations import Activations
from probeguard.detector.heads.base import HeadConfig, StandardisedHead, check_int_range
from probeguard.detector.heads.registry import register_head


@dataclass(frozen=True)
class AttentionPoolConfig(HeadConfig):
    # Queries (attention heads): each its own softmax over the tokens and its own value direction; each adds
    # 2 x d_model weights. The training config sets it per category.
    heads: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int_range(self, "heads", 1, 64)


@register_head("attention_pool_linear")
class AttentionPoolHead(StandardisedHead):
    """z = (h - center) * scale; per query q, a[b, :, q] = softmax over text tokens of (query[q] . z + query_bias[q]);
    logits[b, l] = bias[l] + sum_q weight[l, q] * sum_i a[b, i, q] * (value[q] . z[b, i])."""

    config_class = AttentionPoolConfig
    level = "sequence"

    def __init__(self, config: AttentionPoolConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        n_q = config.heads
        self.query = nn.Parameter(torch.zeros(n_q, d_model))  # [heads, d_model]
        self.query_bias = nn.Parameter(torch.zeros(n_q))  # [heads]
        self.value = nn.Parameter(torch.zeros(n_q, d_model))  # [heads, d_model]
        # [labels, heads]: how the queries' pooled scores combine; Platt scaling folds here. Training keeps it at ones
        # (the values carry the scale), so one label's logit is the sum of the queries' pooled scores.
        self.weight = nn.Parameter(torch.ones(len(config.labels), n_q))
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        mask = acts.content_mask  # [batch, seq]
        n_q = self.config.heads
        # (h - center) * scale @ W.T == h @ (W * scale).T - center @ (W * scale).T: one [d_model, 2 x heads] matmul
        # over the raw stream, no standardised copy of it ([batch, seq, d_model]) in training or in the graph.
        both = torch.cat([self.query, self.value]) * self.scale  # [2 x heads, d_model]
        shift = both @ self.center  # [2 x heads]
        projected = acts.layer(self.config.layer) @ both.T - shift  # [batch, seq, 2 x heads]
        attn_logits = projected[..., :n_q] + self.query_bias  # [batch, seq, heads]
        attn_logits = attn_logits.masked_fill(~mask.unsqueeze(-1), torch.finfo(attn_logits.dtype).min)
        attn = torch.softmax(attn_logits, dim=1)  # [batch, seq, heads]: sums to 1 over each text's tokens
        pooled = (attn * projected[..., n_q:]).sum(dim=1)  # [batch, heads]
        pooled = torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))  # no text: no evidence
        return pooled @ self.weight.T + self.bias  # [batch, labels]
