"""Head types registered by name; a duplicate name is an error, never a silent override."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probeguard.detector.errors import ConfigError
from probeguard.detector.heads.base import Head, HeadConfig

_HEAD_TYPES: dict[str, type[Head]] = {}


def register_head(type_name: str) -> Callable[[type[Head]], type[Head]]:
    def decorate(cls: type[Head]) -> type[Head]:
        if type_name in _HEAD_TYPES:
            raise ConfigError(f"head type {type_name!r} is already registered by {_HEAD_TYPES[type_name].__name__}")
        cls.type_name = type_name
        _HEAD_TYPES[type_name] = cls
        return cls

    return decorate


def head_types() -> dict[str, type[Head]]:
    return dict(_HEAD_TYPES)


def head_class(type_name: str) -> type[Head]:
    try:
        return _HEAD_TYPES[type_name]
    except KeyError:
        raise ConfigError(f"unknown head type {type_name!r}; known: {sorted(_HEAD_TYPES)}") from None


def config_from_dict(type_name: str, data: dict[str, Any]) -> HeadConfig:
    return head_class(type_name).config_class.from_dict(data)


def build_head(config: HeadConfig, d_model: int) -> Head:
    for cls in _HEAD_TYPES.values():
        if type(config) is cls.config_class:
            return cls(config, d_model)
    raise ConfigError(f"no registered head type takes {type(config).__name__}")


def head_level(type_name: str, config: HeadConfig) -> str:
    """'token' or 'sequence'; SAE-feature heads choose theirs in the config."""
    level = getattr(config, "level", None)
    return level if isinstance(level, str) else head_class(type_name).level
