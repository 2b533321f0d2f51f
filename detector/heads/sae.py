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
    # level="token": each token also reads the codes of the next `lookahead` tokens (as TokenLinearHead does).
    lookahead: int = 0

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
        bad_lookahead = not isinstance(self.lookahead, int) or isinstance(self.lookahead, bool) or self.lookahead < 0
        if bad_lookahead or (self.lookahead and self.level != "token"):
            raise ConfigError(f"head {self.name}: lookahead must be a non-negative integer, and 0 unless level is "
                              f"'token'; got {self.lookahead!r}")  # fmt: skip


@register_head("sae_feature")
class SAEFeatureHead(Head):
    config_class = SAEFeatureConfig
    level = "sequence"  # per instance: see __init__

    def __init__(self, config: SAEFeatureConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.level = config.level  # type: ignore[misc]
        n = len(config.labels)
        # [labels, d_sae] (mostly zeros), or [labels, lookahead + 1, d_sae] for a token head with lookahead
        shape = (n, config.lookahead + 1, config.d_sae) if config.lookahead else (n, config.d_sae)
        self.weight = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(len(config.labels)))  # [labels]

    def forward(self, acts: Activations) -> torch.Tensor:
        cfg: SAEFeatureConfig = self.config  # type: ignore[assignment]
        codes = acts.codes(cfg.sae)  # [batch, seq, d_sae]
        if cfg.level == "token" and cfg.lookahead:
            return self._lookahead_logits(codes, acts.content_mask) + self.bias  # [batch, seq, labels]
        if cfg.level == "token":
            return codes @ self.weight.T + self.bias  # [batch, seq, labels]
        pooled = pool(codes, acts.content_mask, cfg.pooling, cfg.window)  # [batch, d_sae]
        return pooled @ self.weight.T + self.bias  # [batch, labels]

    def _lookahead_logits(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """sum_j weight[:, j] . codes[i + j] without stacking the codes (lookahead_stack would copy d_sae-wide rows
        lookahead + 1 times): project each offset's weights first, then shift. Codes past the text read as zeros."""
        w = self.config.lookahead  # type: ignore[attr-defined]
        codes = torch.where(mask.unsqueeze(-1), codes, torch.zeros_like(codes))
        seq = codes.shape[1]
        proj = torch.einsum("bsd,lwd->bswl", codes, self.weight)  # [batch, seq, w + 1, labels]
        padded = torch.nn.functional.pad(proj, (0, 0, 0, 0, 0, w))  # [batch, seq + w, w + 1, labels]
        return torch.stack([padded[:, j : j + seq, j] for j in range(w + 1)]).sum(0)  # [batch, seq, labels]
