"""Bundles: `models/<name>/<version>/manifest.json` + `heads.safetensors`, checked on load.

Every check names the file and the field that failed. A bundle that does not match its host, its checksum or its own
schema is refused: the detector never falls back to something else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from detector.errors import BundleCorruptError, BundleHostMismatchError, BundleNotFoundError, ConfigError
from detector.heads import Head, build_head, config_from_dict, head_level
from detector.heads.base import HeadConfig
from detector.host import HostInfo, sha256_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEADS_FILE = "heads.safetensors"


@dataclass(frozen=True)
class HostRef:
    id: str  # "gemma-3-270m-q4_k_m" (the packaged default) or a folder name
    sha256: str  # detector.host.weights_sha256 of the host the heads were trained on
    num_layers: int
    d_model: int
    family: str  # config.model_type, e.g. gemma3_text


@dataclass(frozen=True)
class HeadEntry:
    type: str  # registered head type
    config: HeadConfig
    thresholds: dict[str, float]  # label -> decision threshold on the calibrated probability


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    host: HostRef
    heads: tuple[HeadEntry, ...]
    heads_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def active_heads(self) -> tuple[HeadEntry, ...]:
        return tuple(h for h in self.heads if h.config.active)

    @property
    def layers(self) -> tuple[int, ...]:
        """Layers read by active heads; the host runs to the deepest one."""
        return tuple(sorted({h.config.layer for h in self.active_heads}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "host": vars(self.host),
            "layers": list(self.layers),
            "heads": [{"type": h.type, "config": h.config.to_dict(), "thresholds": h.thresholds} for h in self.heads],
            "files": {HEADS_FILE: {"sha256": self.heads_sha256}},
            "metrics": self.metrics,
            "training_data": self.training_data,
        }


@dataclass(frozen=True)
class Bundle:
    path: Path | None
    manifest: Manifest
    tensors: dict[str, torch.Tensor]  # "<head>.<param>" -> tensor, float32

    def build_heads(self) -> list[Head]:
        """Modules of the active heads with their weights loaded."""
        heads = []
        for entry in self.manifest.active_heads:
            head = build_head(entry.config, self.manifest.host.d_model)
            prefix = entry.config.name + "."
            head.load_state_dict({k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)})
            heads.append(head)
        return heads

    def check_host(self, host: HostInfo, num_layers: int, d_model: int) -> None:
        ref = self.manifest.host
        where = f"{self.path / MANIFEST if self.path else MANIFEST}"
        if ref.sha256 != host.sha256:
            raise BundleHostMismatchError(
                f"{where} field host.sha256 is {ref.sha256[:12]}… but the loaded host {host.id!r} has weights "
                f"{host.sha256[:12]}…: these heads were trained on another host"
            )
        if (ref.num_layers, ref.d_model) != (num_layers, d_model):
            raise BundleHostMismatchError(
                f"{where} fields host.num_layers/d_model are {ref.num_layers}/{ref.d_model}, host has "
                f"{num_layers}/{d_model}"
            )


def _corrupt(where: str, msg: str) -> BundleCorruptError:
    return BundleCorruptError(f"{where}: {msg}")


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise _corrupt(where, f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _corrupt(where, f"field {key!r} has type {type(value).__name__}")
    return value


def _parse_manifest(data: Any, where: str) -> Manifest:
    if not isinstance(data, dict):
        raise _corrupt(where, "top level must be a JSON object")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise _corrupt(where, f"field format_version is {version!r}, this detector reads {FORMAT_VERSION}")
    host_raw = _require(data, "host", dict, where)
    host = HostRef(
        id=_require(host_raw, "id", str, where + " host"),
        sha256=_require(host_raw, "sha256", str, where + " host"),
        num_layers=_require(host_raw, "num_layers", int, where + " host"),
        d_model=_require(host_raw, "d_model", int, where + " host"),
        family=_require(host_raw, "family", str, where + " host"),
    )
    entries = []
    for i, raw in enumerate(_require(data, "heads", list, where)):
        at = f"{where} field heads[{i}]"
        if not isinstance(raw, dict):
            raise _corrupt(at, "must be an object")
        try:
            config = config_from_dict(_require(raw, "type", str, at), _require(raw, "config", dict, at))
        except ConfigError as exc:
            raise _corrupt(at, str(exc)) from None
        thresholds = _require(raw, "thresholds", dict, at)
        if set(thresholds) != set(config.labels):
            raise _corrupt(at, f"thresholds must cover exactly the labels {list(config.labels)}")
        for label, t in thresholds.items():
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 < t < 1.0:
                raise _corrupt(at, f"threshold of {label} must be a number in (0, 1), got {t!r}")
        entries.append(HeadEntry(raw["type"], config, {k: float(v) for k, v in thresholds.items()}))
    files = _require(data, "files", dict, where)
    heads_file = files.get(HEADS_FILE)
    if not isinstance(heads_file, dict) or not isinstance(heads_file.get("sha256"), str):
        raise _corrupt(where, f"field files.{HEADS_FILE}.sha256 is missing")
    manifest = Manifest(
        name=_require(data, "name", str, where),
        version=_require(data, "version", str, where),
        host=host,
        heads=tuple(entries),
        heads_sha256=heads_file["sha256"],
        metrics=data.get("metrics") or {},
        training_data=data.get("training_data") or {},
        created_at=str(data.get("created_at", "")),
    )
    _check_heads(manifest, where)
    if list(manifest.layers) != data.get("layers"):
        raise _corrupt(where, f"field layers is {data.get('layers')!r} but active heads read {list(manifest.layers)}")
    return manifest


def _check_heads(manifest: Manifest, where: str) -> None:
    names = [h.config.name for h in manifest.heads]
    if len(set(names)) != len(names):
        raise _corrupt(where, f"field heads has duplicate names {sorted({n for n in names if names.count(n) > 1})}")
    if not manifest.active_heads:
        raise _corrupt(where, "field heads has no active head")
    for entry in manifest.heads:
        if entry.config.layer > manifest.host.num_layers:
            raise _corrupt(where, f"head {entry.config.name} reads layer {entry.config.layer} > host.num_layers")
    seen: dict[tuple[str, str], str] = {}
    for entry in manifest.active_heads:
        level = head_level(entry.type, entry.config)
        for label in entry.config.labels:
            other = seen.setdefault((level, label), entry.config.name)
            if other != entry.config.name:
                raise _corrupt(where, f"label {label} is produced by two active heads ({other}, {entry.config.name})")


def load_bundle(path: Path) -> Bundle:
    path = Path(path)
    manifest_path, heads_path = path / MANIFEST, path / HEADS_FILE
    if not path.is_dir():
        raise BundleNotFoundError(f"bundle folder {path} does not exist")
    for p in (manifest_path, heads_path):
        if not p.is_file():
            raise BundleNotFoundError(f"bundle file {p} does not exist")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(str(manifest_path), f"not valid JSON ({type(exc).__name__})") from None
    manifest = _parse_manifest(data, str(manifest_path))
    actual = sha256_file(heads_path)
    if actual != manifest.heads_sha256:
        raise _corrupt(
            str(heads_path),
            f"sha256 {actual[:12]}… does not match {MANIFEST} field files.{HEADS_FILE}.sha256 "
            f"({manifest.heads_sha256[:12]}…)",
        )
    try:
        tensors = {k: v.float() for k, v in load_file(str(heads_path)).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupt(str(heads_path), f"unreadable safetensors ({type(exc).__name__})") from None
    bundle = Bundle(path, manifest, tensors)
    _check_tensors(bundle, str(heads_path))
    return bundle


def _check_tensors(bundle: Bundle, where: str) -> None:
    expected: dict[str, tuple[int, ...]] = {}
    for entry in bundle.manifest.heads:
        head = build_head(entry.config, bundle.manifest.host.d_model)
        for name, param in head.state_dict().items():
            expected[f"{entry.config.name}.{name}"] = tuple(param.shape)
    for name, shape in expected.items():
        if name not in bundle.tensors:
            raise _corrupt(where, f"missing tensor {name}")
        if tuple(bundle.tensors[name].shape) != shape:
            raise _corrupt(where, f"tensor {name} has shape {tuple(bundle.tensors[name].shape)}, expected {shape}")
        if not torch.isfinite(bundle.tensors[name]).all():
            raise _corrupt(where, f"tensor {name} has non-finite values")
    extra = sorted(set(bundle.tensors) - set(expected))
    if extra:
        raise _corrupt(where, f"unexpected tensors {extra[:5]}")


def save_bundle(
    path: Path,
    *,
    name: str,
    version: str,
    host: HostRef,
    heads: Sequence[tuple[Head, dict[str, float]]],
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
) -> Bundle:
    """Write manifest + tensors, then load the result back through every check."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{head.config.name}.{k}": v.detach().to(torch.float32).contiguous()
        for head, _ in heads
        for k, v in head.state_dict().items()
    }
    save_file(tensors, str(path / HEADS_FILE))
    manifest = Manifest(
        name=name,
        version=version,
        host=host,
        heads=tuple(HeadEntry(h.type_name, h.config, dict(t)) for h, t in heads),
        heads_sha256=sha256_file(path / HEADS_FILE),
        metrics=metrics or {},
        training_data=training_data or {},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    (path / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return load_bundle(path)
