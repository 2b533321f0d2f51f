"""Masked pooling over the sequence axis: [batch, seq, d] + mask [batch, seq] -> [batch, d].

Masking uses `where`/`masked_fill` rather than multiplying by the mask, so padding never leaks NaN or huge
activations into a pooled vector (and the ONNX export stays exact).
"""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["mean", "max", "last", "rolling-mean-max"]
POOLINGS: tuple[str, ...] = ("mean", "max", "last", "rolling-mean-max")


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1)  # [batch, seq, 1]
    total = torch.where(m, h, torch.zeros_like(h)).sum(dim=1)
    count = m.sum(dim=1).clamp(min=1).to(h.dtype)
    return total / count


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = h.masked_fill(~mask.unsqueeze(-1), torch.finfo(h.dtype).min)
    pooled = filled.max(dim=1).values
    return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


def masked_last(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    seq = h.shape[1]
    positions = torch.arange(seq, device=h.device).unsqueeze(0).expand_as(mask)
    last = torch.where(mask, positions, torch.zeros_like(positions)).max(dim=1).values  # [batch]
    index = last.view(-1, 1, 1).expand(-1, 1, h.shape[-1])
    return h.gather(1, index).squeeze(1)


def _run_means(h: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the run of up to `window` text tokens ending at each position [batch, seq, d], and how many text
    tokens that run holds [batch, seq, 1] (fewer than `window` at the start)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    csum = torch.where(mask.unsqueeze(-1), h, torch.zeros_like(h)).cumsum(dim=1)  # [batch, seq, d]
    ccount = m.cumsum(dim=1)  # [batch, seq, 1]
    pad_h = torch.nn.functional.pad(csum, (0, 0, window, 0))[:, : h.shape[1]]
    pad_c = torch.nn.functional.pad(ccount, (0, 0, window, 0))[:, : h.shape[1]]
    count = ccount - pad_c
    return (csum - pad_h) / count.clamp(min=1), count


def rolling_mean_max(h: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over each run of `window` consecutive tokens (fewer at the start), then the max over runs."""
    means, _ = _run_means(h, mask, window)
    return masked_max(means, mask)


def full_window_max(z: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """[batch, seq, k] -> [batch, k]: the max over every run of `window` consecutive text tokens of the run's mean; a
    text shorter than `window` is one run. Unlike `rolling_mean_max`, partial runs at the start are skipped: a
    one-token "run" is noise, not evidence."""
    means, count = _run_means(z, mask, window)  # [batch, seq, k], [batch, seq, 1]
    need = mask.sum(dim=1).view(-1, 1, 1).to(z.dtype).clamp(max=window)  # [batch, 1, 1] a full run, or the whole text
    return masked_max(means, mask & (count >= need).squeeze(-1))


def pool(h: torch.Tensor, mask: torch.Tensor, pooling: str, window: int) -> torch.Tensor:
    if pooling == "mean":
        return masked_mean(h, mask)
    if pooling == "max":
        return masked_max(h, mask)
    if pooling == "last":
        return masked_last(h, mask)
    if pooling == "rolling-mean-max":
        return rolling_mean_max(h, mask, window)
    raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")


def lookahead_stack(h: torch.Tensor, mask: torch.Tensor, lookahead: int) -> torch.Tensor:
    """[batch, seq, d] -> [batch, seq, lookahead + 1, d]: each token's own and next tokens' activations.

    A causal host's token i has not seen tokens after it; reading h[i..i+w] gives the head that right context (a linear
    head over this stack is a 1-D convolution). Positions past the text (specials, padding) read as zeros.
    """
    h = torch.where(mask.unsqueeze(-1), h, torch.zeros_like(h))
    seq = h.shape[1]
    padded = torch.nn.functional.pad(h, (0, 0, 0, lookahead))  # [batch, seq + w, d]
    return torch.stack([padded[:, j : j + seq] for j in range(lookahead + 1)], dim=2)
