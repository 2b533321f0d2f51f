"""Exact explanations of an attention-pooled category score: the served logit split into parts that sum to it.

For one window of a text and one label l of an `AttentionPoolHead`, once the attention weights a[t, q] of the served
forward pass are fixed, the logit is linear in the token activations h_t (z_t = (h_t - c) * s, c and s the head's
standardisation):

    logit = bias_l + sum_t g_t . (h_t - c),    g_t = sum_q weight[l, q] a[t, q] (value_q * s)    # [d_model]

so token t contributes g_t . (h_t - c). With an SAE on the same layer, h_t = f_t W_dec + b_dec + e_t (codes f_t, the
SAE's error e_t), and each token's term splits again:

    g_t . (h_t - c) = sum_i f_t,i (g_t . W_dec[i]) + g_t . (b_dec - c) + g_t . e_t

which gives per-feature contributions, a constant (the SAE's offset seen through the head) and the error term: the
parts sum to the logit by construction, and a test checks it against the head's own forward pass. The sums run in
float64, so the parts reproduce the float32 logit to float32 precision. What the attention itself does (which tokens
it listens to) is in `attention`; a feature's contribution counts it through the values, with the weights held fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probeguard.detector.errors import ConfigError
from probeguard.detector.heads.attention import AttentionPoolHead
from probeguard.detector.heads.sae import SAEFeatureHead
from probeguard.detector.sae import SparseAutoencoder


@dataclass(frozen=True)
class FeatureParts:
    """The SAE split of every token's term (`TokenParts.tokens`)."""

    contributions: np.ndarray  # [d_sae] each feature's part of the logit, summed over tokens
    token_contributions: np.ndarray  # [seq, d_sae] f_t,i (g_t . W_dec[i]); zero where feature i did not fire at t
    offset: float  # sum_t g_t . (b_dec - c): the SAE's offset seen through the head
    error: float  # sum_t g_t . e_t: what the SAE does not reconstruct, seen through the head


@dataclass(frozen=True)
class LogitParts:
    logit: float  # the head's logit for the label (calibration folded in: the score is its sigmoid)
    bias: float  # the head's bias for the label
    tokens: np.ndarray  # [seq] each token's part of the logit; 0 outside the text (special tokens, padding)
    attention: np.ndarray  # [seq, heads] the served attention weights (each query's column sums to 1 over the text)
    features: FeatureParts | None = None  # with an SAE

    def total(self) -> float:
        """bias + every token's part: equals `logit` up to float rounding."""
        return self.bias + float(self.tokens.sum())

    def feature_total(self) -> float:
        """bias + every feature's part + the SAE offset + its error: equals `logit` up to float rounding."""
        if self.features is None:
            raise ConfigError("no SAE was given: the logit has token parts only")
        f = self.features
        return self.bias + float(f.contributions.sum()) + f.offset + f.error


def sparse_split(
    codes: torch.Tensor,  # [seq, d_sae] float64, at most a few non-zero per token
    w_dec: torch.Tensor,  # [d_sae, d_model] float64
    g: torch.Tensor,  # [seq, d_model] float64: each token's gradient (or value direction)
) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes @ w_dec [seq, d_model], codes * (g @ w_dec.T) [seq, d_sae]) over the active features only: a TopK
    SAE fires k of d_sae features per token, so this reads k decoder rows per token instead of all of them."""
    n = max(1, int((codes != 0).sum(-1).max())) if codes.numel() else 1
    values, index = codes.topk(min(n, codes.shape[-1]), dim=-1)  # [seq, n] each
    rows = w_dec[index]  # [seq, n, d_model]
    recon = (values.unsqueeze(-1) * rows).sum(1)  # [seq, d_model]
    per = torch.zeros_like(codes).scatter(-1, index, values * (rows * g.unsqueeze(1)).sum(-1))  # [seq, d_sae]
    return recon, per


def attention_logit_parts(
    head: AttentionPoolHead,
    layer_acts: torch.Tensor,  # [seq, d_model]: the window's activations at head.config.layer
    content: torch.Tensor,  # [seq] bool: the text's tokens (no special tokens, no padding)
    label: int = 0,
    sae: SparseAutoencoder | None = None,
    codes: torch.Tensor | None = None,  # [seq, d_sae] sae.encode(layer_acts), when the caller has them already
) -> LogitParts:
    """The parts of `head`'s logit for `label` on one window (see the module docstring)."""
    if sae is not None and (sae.config.layer, sae.config.d_in) != (head.config.layer, layer_acts.shape[-1]):
        raise ConfigError(f"SAE {sae.config.name} reads layer {sae.config.layer}, head {head.config.name} reads "
                          f"layer {head.config.layer}")  # fmt: skip
    if not 0 <= label < len(head.config.labels):
        raise ConfigError(f"head {head.config.name} has {len(head.config.labels)} labels, not label {label}")
    with torch.no_grad():
        h = layer_acts.to(torch.float64)  # [seq, d_model]
        mask = content.to(torch.bool)  # [seq]
        center, scale = head.center.to(torch.float64), head.scale.to(torch.float64)  # [d_model] each
        query, value = head.query.to(torch.float64) * scale, head.value.to(torch.float64) * scale  # [heads, d_model]
        weight, bias = head.weight.to(torch.float64)[label], float(head.bias[label])  # [heads], scalar
        centred = h - center  # [seq, d_model]
        attn_logits = centred @ query.T + head.query_bias.to(torch.float64)  # [seq, heads]
        attn_logits = attn_logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        attn = torch.softmax(attn_logits, dim=0) if mask.any() else torch.zeros_like(attn_logits)  # [seq, heads]
        attn = torch.nan_to_num(attn)
        g = (attn * weight) @ value  # [seq, d_model]: g_t
        tokens = (g * centred).sum(-1) * mask  # [seq]
        logit = bias + float(tokens.sum())
        features = None
        if sae is not None:
            codes = sae.encode(layer_acts.to(torch.float32)) if codes is None else codes
            recon, per = sparse_split(codes.to(torch.float64), sae.W_dec.to(torch.float64), g)
            b_dec = sae.b_dec.to(torch.float64)  # [d_model]
            error = h - (recon + b_dec)  # [seq, d_model]
            per = per * mask.unsqueeze(-1)  # [seq, d_sae]
            features = FeatureParts(
                contributions=per.sum(0).numpy(),
                token_contributions=per.numpy(),
                offset=float(((g * (b_dec - center)).sum(-1) * mask).sum()),
                error=float(((g * error).sum(-1) * mask).sum()),
            )
    return LogitParts(logit, bias, tokens.numpy(), attn.numpy(), features)


def sae_head_logit_parts(
    head: SAEFeatureHead,
    layer_acts: torch.Tensor,  # [seq, d_model]: the window's activations at head.config.layer
    content: torch.Tensor,  # [seq] bool
    label: int,
    sae: SparseAutoencoder,  # the SAE the head reads
) -> LogitParts:
    """An SAE-feature head's logit is bias + sum_i weight_i pooled_i over its SAE's pooled codes: each feature's part
    is exact; with max pooling a feature's part sits on the token where it peaked, with mean pooling it is spread over
    the tokens by their codes. The head reads codes, not activations, so there is no SAE offset or error term."""
    pooling = head.config.pooling  # type: ignore[attr-defined]
    if pooling not in ("max", "mean"):
        raise ConfigError(f"head {head.config.name}: pooling {pooling!r} has no per-token split (max and mean have)")
    with torch.no_grad():
        mask = content.to(torch.bool)
        codes = sae.encode(layer_acts.to(torch.float32)).to(torch.float64) * mask.unsqueeze(-1)  # [seq, d_sae]
        weight, bias = head.weight.to(torch.float64)[label], float(head.bias[label])  # [d_sae], scalar
        per = torch.zeros_like(codes)  # [seq, d_sae]
        if mask.any() and pooling == "max":
            peak = codes.masked_fill(~mask.unsqueeze(-1), float("-inf")).argmax(0)  # [d_sae]
            cols = torch.arange(codes.shape[1])
            per[peak, cols] = codes[peak, cols] * weight
        elif mask.any():
            per = codes * weight / mask.sum()
        tokens = per.sum(-1)
        contributions = per.sum(0)
        features = FeatureParts(contributions.numpy(), per.numpy(), 0.0, 0.0)
        logit = bias + float(contributions.sum())
    return LogitParts(logit, bias, tokens.numpy(), np.zeros((len(mask), 0)), features)
