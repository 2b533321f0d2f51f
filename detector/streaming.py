"""Streaming scoring state (first step of #34): what a growing text keeps between chunks so that each update costs
the new tokens only.

A causal host's activations of the tokens already seen never change when more text arrives. An attention-pooled
category head (`AttentionPoolHead`) is, per query, a softmax-weighted sum of per-token values over the text's tokens;
the online softmax keeps, per query, the running maximum of the attention logits, the sum of exp(logit - maximum)
and the same-weighted sum of values, rescaled when the maximum rises. Pooled = total / norm: the head's logits on the
whole text, whatever the chunking (float64 state; checked against the torch head to 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from probeguard.detector.heads.attention import AttentionPoolHead


@dataclass
class AttentionPoolState:
    """One text's running state for one attention-pooled head. `update` takes the served layer's activations of the
    text tokens that just arrived ([new_tokens, d_model], in order); `logits` are the head's logits on all of them."""

    both: np.ndarray  # [2 x heads, d_model] query and value directions with the standardisation's scale folded in
    shift: np.ndarray  # [2 x heads] what the standardisation's centre subtracts
    query_bias: np.ndarray  # [heads]
    weight: np.ndarray  # [labels, heads]
    bias: np.ndarray  # [labels]
    peak: np.ndarray = field(init=False)  # [heads] running max of the attention logits (-inf: no token yet)
    norm: np.ndarray = field(init=False)  # [heads] sum of exp(logit - peak)
    total: np.ndarray = field(init=False)  # [heads] sum of exp(logit - peak) x value
    tokens: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        heads = self.query_bias.shape[0]
        self.peak = np.full(heads, -np.inf)
        self.norm = np.zeros(heads)
        self.total = np.zeros(heads)

    @classmethod
    def of(cls, head: AttentionPoolHead) -> AttentionPoolState:
        """The empty state of `head` (its parameters copied once, as float64)."""
        params = {k: v.detach().double().numpy() for k, v in head.state_dict().items()}
        both = np.concatenate([params["query"], params["value"]]) * params["scale"]  # [2 x heads, d_model]
        return cls(both, both @ params["center"], params["query_bias"], params["weight"], params["bias"])

    def update(self, acts: np.ndarray) -> None:
        """Add the next text tokens' activations [new_tokens, d_model] (O(new tokens))."""
        if acts.ndim != 2 or acts.shape[1] != self.both.shape[1]:
            raise ValueError(f"expected activations [tokens, {self.both.shape[1]}], got {list(acts.shape)}")
        if not len(acts):
            return
        n_q = self.query_bias.shape[0]
        projected = acts.astype(np.float64) @ self.both.T - self.shift  # [new, 2 x heads]
        scores, values = projected[:, :n_q] + self.query_bias, projected[:, n_q:]  # [new, heads] each
        peak = np.maximum(self.peak, scores.max(axis=0))  # [heads]
        rescale = np.exp(self.peak - peak)  # 0 for the first tokens (exp(-inf))
        weights = np.exp(scores - peak)  # [new, heads]
        self.norm = self.norm * rescale + weights.sum(axis=0)
        self.total = self.total * rescale + (weights * values).sum(axis=0)
        self.peak = peak
        self.tokens += len(acts)

    def logits(self) -> np.ndarray:
        """[labels]: the head's logits on every token added so far (no token: the bias alone, as the head)."""
        pooled = self.total / self.norm if self.tokens else np.zeros_like(self.total)  # [heads]
        return self.weight @ pooled + self.bias
