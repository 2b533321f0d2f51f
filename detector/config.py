"""Typed configs read from JSON or TOML: a frozen dataclass per config, unknown, missing or mistyped fields refused.

Head configs (`detector.heads.base.HeadConfig`) and SAE configs (`detector.sae.SAEConfig`) share this reader, so a
bundle's manifest and an SAE's `cfg.json` fail the same way: a `ConfigError` naming the class and the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Self

from detector.errors import ConfigError


class JsonConfig:
    """Mixin for frozen dataclasses: `from_dict` (checked) and `to_dict` (tuples as lists)."""

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
