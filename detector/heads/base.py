"""Head contract: a config dataclass per head type, and a torch module that reads `Activations`.

A token-level head returns logits [batch, seq, n_labels]; a sequence-level head returns logits [batch, n_labels].
Probabilities are `sigmoid(logits)`: every label is an independent binary decision (multi-label), and calibration
(Platt scaling) folds into the last linear layer, so the served graph needs no extra op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from detector.activations import Activations
from detector.config import JsonConfig
from detector.errors import ConfigError

Level = Literal["token", "sequence"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class HeadConfig(JsonConfig):
    name: str  # unique within a bundle; prefixes the head's tensors in heads.safetensors
    layer: int  # residual stream after this many blocks (see detector.truncate)
    labels: tuple[str, ...]  # one output per label
    active: bool = True  # inactive heads stay in the bundle (for comparison) but are not built or served

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"head name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            raise ConfigError(f"head {self.name}: layer must be a non-negative integer, got {self.layer!r}")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"head {self.name}: labels must be non-empty and unique")
        for label in self.labels:
            if not isinstance(label, str) or not _LABEL.match(label):
                raise ConfigError(f"head {self.name}: label {label!r} must match {_LABEL.pattern}")

    @property
    def layers_read(self) -> tuple[int, ...]:
        """Every layer the head reads (the host runs to the deepest one); most heads read `layer` alone."""
        return (self.layer,)


class Head(nn.Module):
    """Base of every head module. Subclasses set `type_name`, `config_class` and `level`."""

    type_name: ClassVar[str]
    config_class: ClassVar[type[HeadConfig]]
    level: ClassVar[Level]

    def __init__(self, config: HeadConfig, d_model: int) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.d_model = d_model

    def forward(self, acts: Activations) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
