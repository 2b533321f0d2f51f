"""Head contract: a config dataclass per head type, and a torch module that reads `Activations`.

A token-level head returns logits [batch, seq, n_labels]; a sequence-level head returns logits [batch, n_labels].
Probabilities are `sigmoid(logits)`: every label is an independent binary decision (multi-label), and calibration
(Platt scaling) folds into the last linear layer, so the served graph needs no extra op.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import torch
from torch import nn

from detector.activations import Activations
from detector.errors import ConfigError

Level = Literal["token", "sequence"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class HeadConfig:
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from JSON; unknown or missing fields and wrong types are a ConfigError naming the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigError(f"{cls.__name__}: missing field {name!r}")
                continue
            values[name] = _coerce(cls.__name__, name, hints[name], data[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{owner}.{name} must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(owner, name, args[0], value)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{owner}.{name} must be a list of strings")
        return tuple(value)
    expected = {int: int, float: (int, float), str: str, bool: bool}.get(hint)
    if expected is not None:
        bad_bool = hint is not bool and isinstance(value, bool)
        if bad_bool or not isinstance(value, expected):
            raise ConfigError(f"{owner}.{name} must be {hint.__name__}, got {type(value).__name__}")
        return float(value) if hint is float else value
    return value


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
