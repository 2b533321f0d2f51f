"""host -> activations -> heads as one torch module (the thing the torch backend runs and ONNX export traces)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from probeguard.detector.activations import Activations, content_mask_from
from probeguard.detector.errors import ConfigError
from probeguard.detector.heads import Head
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.truncate import TruncatedHost


class ProbeModel(nn.Module):
    """forward(input_ids [batch, seq], attention_mask [batch, seq]) -> one logits tensor per head, in `head_names`
    order: token heads [batch, seq, labels], sequence heads [batch, labels]; then the activations of every layer the
    heads read, in `host.layers` order ([batch, seq, d_model] each): computed for the heads anyway, fetched only to
    explain a score (the ONNX graph exposes them as outputs a caller may leave unrequested).

    Each SAE is encoded once per batch (into `Activations.features`), whatever the number of heads reading it."""

    def __init__(
        self,
        host: TruncatedHost,
        heads: Sequence[Head],
        prefix: int,
        suffix: int,
        saes: Sequence[SparseAutoencoder] = (),
    ) -> None:
        super().__init__()
        missing = sorted({k for h in heads for k in h.config.layers_read} - set(host.layers))
        if missing:
            raise ConfigError(f"heads read layers {missing} that the truncated host does not capture")
        unread = sorted({s.config.layer for s in saes} - set(host.layers))
        if unread:
            raise ConfigError(f"SAEs encode layers {unread} that the truncated host does not capture")
        self.host = host
        self.heads = nn.ModuleList(heads)
        self.saes = nn.ModuleDict({s.config.name: s for s in saes})
        self.head_names: tuple[str, ...] = tuple(h.config.name for h in heads)
        self.prefix = prefix
        self.suffix = suffix

    def activations(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Activations:
        hidden = self.host(input_ids, attention_mask)
        mask = attention_mask.bool()
        layers = dict(zip(self.host.layers, hidden, strict=True))  # layer -> [batch, seq, d_model]
        return Activations(
            layers=layers,
            attention_mask=mask,
            content_mask=content_mask_from(mask, self.prefix, self.suffix),
            features={name: sae.encode(layers[sae.config.layer]) for name, sae in self.saes.items()},
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts = self.activations(input_ids, attention_mask)
        return (*(head(acts) for head in self.heads), *(acts.layer(k) for k in self.host.layers))
