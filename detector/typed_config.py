"""The one typed reader for settings and configs: frozen dataclasses built from JSON, TOML or environment variables.

- `build_config(cls, data, where)`: a JSON object or TOML table -> `cls`; nested dataclasses, `list[T]`,
  `tuple[str, ...]`, `Literal`, optional fields and `Path` are understood. Unknown, missing or mistyped keys are a
  `ConfigError` naming the key (`data.n_btc must be int, got str`). Bundle manifests (head configs), SAE configs
  and the training TOML all use it.
- `read_env(cls, env)`: `PROBEGUARD_<FIELD>` strings (or the field's `metadata["env"]` name) parsed by each field's
  type, for the library and service settings. A value that does not parse is a `ConfigError` naming the variable.

Validation of values (ranges, cross-field rules) stays in each dataclass's `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from probeguard.detector.errors import ConfigError

ENV_PREFIX = "PROBEGUARD_"
_SCALARS: dict[Any, Any] = {int: int, float: (int, float), str: str, bool: bool}


def build_config(cls: type, data: Any, where: str) -> Any:
    """`cls(**data)` with every key checked against the dataclass fields and their types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__} must be a table/object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where or cls.__name__}: missing key {name!r}")
            continue
        values[name] = _coerce(key, hints[name], data[name])
    return cls(**values)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, key)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key} must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(key, args[0], value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        item = typing.get_args(hint)[0]
        items = [_coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a path string, got {type(value).__name__}")
        return Path(value).expanduser()
    expected = _SCALARS.get(hint)
    if expected is not None:
        if (hint is not bool and isinstance(value, bool)) or not isinstance(value, expected):
            raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__}")
        return float(value) if hint is float else value
    return value


def env_name(f: dataclasses.Field) -> str:
    """The environment variable a settings field is read from: `PROBEGUARD_<FIELD>` or its `metadata["env"]`."""
    return f.metadata.get("env", f"{ENV_PREFIX}{f.name.upper()}")


def read_env(cls: type, env: Mapping[str, str]) -> dict[str, object]:
    """`PROBEGUARD_<FIELD>` values for the fields of a settings dataclass, parsed by each field's type."""
    values: dict[str, object] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = env_name(f)
        raw = env.get(name)
        if raw is None:
            continue
        kind = hints[f.name]
        if kind in (int, float):
            try:
                values[f.name] = kind(raw)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
        elif kind is bool:
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ConfigError(f"{name} must be true or false, got {raw!r}")
            values[f.name] = raw.lower() in ("1", "true", "yes")
        elif kind in (Path, Path | None):
            values[f.name] = Path(raw).expanduser() if raw else None
        else:
            values[f.name] = raw
    return values


class JsonConfig:
    """Mixin for frozen dataclasses read from JSON: `from_dict` (checked by `build_config`) and `to_dict`."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return build_config(cls, data, cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }
