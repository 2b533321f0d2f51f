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

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.typed_config import JsonConfig

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


def check_int_range(config: HeadConfig, field: str, low: int, high: int) -> None:
    """ConfigError unless `config.<field>` is an int (not a bool) in [low, high]."""
    value = getattr(config, field)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"head {config.name}: {field} must be an integer in [{low}, {high}], got {value!r}")


class StandardisedHead(Head):
    """A head that reads z = (h - center) * scale, with per-dimension statistics fixed at training time (buffers, so
    they are saved with the weights): a few residual dimensions are hundreds of times larger than the rest."""

    def __init__(self, config: HeadConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.register_buffer("center", torch.zeros(d_model))  # [d_model]
        self.register_buffer("scale", torch.ones(d_model))  # [d_model]

    def set_standardisation(self, center: torch.Tensor, scale: torch.Tensor) -> None:
        """Per-dimension mean and 1/std of the training activations ([d_model] each)."""
        with torch.no_grad():
            self.center.copy_(center)
            self.scale.copy_(scale)
