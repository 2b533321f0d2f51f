"""The one typed reader (detector.typed_config): JSON/TOML tables and PROBEGUARD_* variables, every key checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from probeguard.detector.errors import ConfigError
from probeguard.detector.typed_config import build_config, read_env


@dataclass(frozen=True)
class Inner:
    layers: list[int] = field(default_factory=list)
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5
    out: Path | None = None
    strict: bool = False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing key 'name'"),
        ({"name": "a", "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({"name": "a", "inner": {"layers": [1, "2"]}}, r"inner\.layers\[1\] must be int, got str"),
        ({"name": "a", "inner": {"layers": [True]}}, r"inner\.layers\[0\] must be int, got bool"),
        ({"name": "a", "inner": {"labels": "PERSON"}}, r"inner\.labels must be a list"),
        ({"name": "a", "inner": []}, "inner must be a table"),
        ({"name": "a", "rate": "high"}, "rate must be float"),
        ({"name": "a", "out": 3}, "out must be a path string"),
    ],
)
def test_build_config_names_the_bad_key(data, message):
    with pytest.raises(ConfigError, match=message):
        build_config(Outer, data, "")


def test_build_config_converts_types():
    got = build_config(Outer, {"name": "a", "inner": {"layers": [6, 8], "labels": ["X"]}, "rate": 1, "out": "~/b"}, "")
    assert got.inner == Inner([6, 8], ("X",)) and got.rate == 1.0 and isinstance(got.rate, float)
    assert got.out == Path("~/b").expanduser()


def test_read_env_parses_by_field_type():
    env = {"PROBEGUARD_NAME": "x", "PROBEGUARD_RATE": "0.25", "PROBEGUARD_OUT": "/tmp/o", "PROBEGUARD_STRICT": "yes"}
    assert read_env(Outer, env) == {"name": "x", "rate": 0.25, "out": Path("/tmp/o"), "strict": True}
    with pytest.raises(ConfigError, match="PROBEGUARD_RATE must be a number"):
        read_env(Outer, {"PROBEGUARD_RATE": "fast"})
    with pytest.raises(ConfigError, match="PROBEGUARD_STRICT must be true or false"):
        read_env(Outer, {"PROBEGUARD_STRICT": "maybe"})
