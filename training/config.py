"""Training configuration: TOML -> frozen dataclasses, every key checked (unknown or mistyped keys are errors)."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import ConfigError


@dataclass(frozen=True)
class BundleSection:
    name: str = "probeguard-base"
    version: str = "0.2.0"
    out: str = "models/probeguard-base/0.2.0"  # relative paths are relative to the config file's repo root


@dataclass(frozen=True)
class DataSection:
    n_pii_train: int = 6000  # synthetic PII examples (train templates, DEFAULT_LOCALES)
    n_pii_val: int = 800  # per validation split: calibration, held-out templates, held-out locale
    heldout_locale: str = "ja_JP"
    negative_fraction: float = 0.35  # share of synthetic examples that are hard negatives
    unsafe_dir: str = "../shared/data/unsafe"  # harmful_/harmless_{train,val}.json
    n_benign: int = 3000  # benign instructions used as negatives (token and category heads)
    benign_files: list[str] = field(default_factory=list)  # your own benign traffic (labelled JSONL) replaces Alpaca
    span_files: list[str] = field(default_factory=list)  # extra span JSONL for the PII head
    labelled_files: list[str] = field(default_factory=list)  # extra labelled JSONL for category heads
    n_injection_synthetic: int = 800


@dataclass(frozen=True)
class SweepSection:
    layers: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10, 12, 14, 16])
    n_texts: int = 1200  # PII texts used per layer; categories use their full training sets
    epochs: int = 3
    tolerance: float = 0.01  # choose the smallest layer within this of the best validation score


@dataclass(frozen=True)
class PiiSection:
    lookahead: int = 3
    epochs: int = 8
    layer: int = 0  # 0 = chosen by the sweep


@dataclass(frozen=True)
class CategorySection:
    target_fpr: float = 0.01  # thresholds: this false-positive rate on validation negatives
    poolings: list[str] = field(default_factory=lambda: ["mean", "max", "rolling-mean-max"])
    layer: int = 0  # 0 = chosen by the sweep


@dataclass(frozen=True)
class SaeSection:
    enabled: bool = True
    d_sae: int = 2048
    k: int = 32
    steps: int = 3000
    batch_tokens: int = 1024
    lr: float = 5e-4
    l1: float = 1e-3  # sparsity of the classifier on SAE codes
    external: str = ""  # a SAELens folder (cfg.json + sae_weights.safetensors) to use instead of training one


@dataclass(frozen=True)
class TrainConfig:
    bundle: BundleSection = field(default_factory=BundleSection)
    data: DataSection = field(default_factory=DataSection)
    sweep: SweepSection = field(default_factory=SweepSection)
    pii: PiiSection = field(default_factory=PiiSection)
    categories: CategorySection = field(default_factory=CategorySection)
    sae: SaeSection = field(default_factory=SaeSection)
    host: str = ""  # model folder; empty = the packaged Gemma 3 270M
    seed: int = 0
    threads: int = 1
    root: str = "."  # resolved: folder relative paths are taken from (the repo root)

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.root) / p


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        hint, key = hints[name], f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, key)
            continue
        origin = typing.get_origin(hint) or hint
        ok = isinstance(value, origin) and not (origin in (int, float) and isinstance(value, bool))
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{key} must be {getattr(origin, '__name__', origin)}, got {type(value).__name__}")
        values[name] = value
    return cls(**values)


def load_config(path: Path) -> TrainConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
    root = path.resolve().parent.parent.parent if path.resolve().parent.name == "configs" else path.resolve().parent
    config = _build(TrainConfig, data, "")
    return dataclasses.replace(config, root=str(root))
