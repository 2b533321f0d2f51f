"""Bundles: `models/<name>/<version>/manifest.json` + `heads.safetensors` + `saes/<name>/` (SAELens folders), checked
on load.

Every check names the file and the field that failed. A bundle that does not match its host, its checksums or its own
schema is refused: the detector never falls back to something else. Format 2 stores each SAE once, as an artifact of
its own that any number of SAE-feature heads name. Format 1 (SAE encoders inside each head, probeguard-base 0.2.0 and
older) is refused with the release that last read it.
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

from probeguard.detector.bundle_artifacts import (
    MANIFEST,
    check_artifact_files,
    check_sha256,
    load_explain,
    load_trace,
    parse_artifacts,
    write_artifacts,
)
from probeguard.detector.errors import BundleCorruptError, BundleHostMismatchError, BundleNotFoundError, ConfigError
from probeguard.detector.explain_store import ExplainArtifacts
from probeguard.detector.heads import Head, SAEFeatureConfig, build_head, config_from_dict, head_level
from probeguard.detector.heads.base import HeadConfig
from probeguard.detector.host import HostInfo, sha256_file
from probeguard.detector.sae import CFG_FILE, WEIGHTS_FILE, SparseAutoencoder, read_sae_folder, write_sae_folder
from probeguard.detector.trace_store import LayerProbes

FORMAT_VERSION = 2
# Format-1 bundles were converted on load until the commit that removed the converter (git history keeps it).
FORMAT_1_HINT = "; format 1 (probeguard-base 0.2.0 and older) was last read by commit aba5b5d: retrain the bundle"
HEADS_FILE = "heads.safetensors"
SAES_DIR = "saes"


@dataclass(frozen=True)
class HostRef:
    id: str  # "gemma-3-270m-q4_k_m" (the packaged default) or a folder name
    sha256: str  # detector.host.weights_sha256 of the host the heads were trained on
    num_layers: int
    d_model: int
    family: str  # config.model_type, e.g. gemma3_text
    # Arithmetic of the host whose activations the heads were trained on: "fp32" (torch or the fp32 graph) or an int8
    # recipe (detector.export.QUANT_RECIPE). Served only with that arithmetic (detector.export.serving_variant).
    activations: str = "fp32"


@dataclass(frozen=True)
class HeadEntry:
    type: str  # registered head type
    config: HeadConfig
    thresholds: dict[str, float]  # label -> decision threshold on the calibrated probability


@dataclass(frozen=True)
class SAEEntry:
    name: str
    files: dict[str, str]  # file under saes/<name>/ -> sha256; empty for an SAE converted from a format-1 bundle

    @property
    def folder(self) -> str:
        return f"{SAES_DIR}/{self.name}"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    host: HostRef
    heads: tuple[HeadEntry, ...]
    heads_sha256: str
    saes: tuple[SAEEntry, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    # optional artifact folders (ARTIFACTS): folder -> {file -> sha256}; a folder not stored is absent
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def active_heads(self) -> tuple[HeadEntry, ...]:
        return tuple(h for h in self.heads if h.config.active)

    @property
    def layers(self) -> tuple[int, ...]:
        """Layers read by active heads; the host runs to the deepest one."""
        return tuple(sorted({k for h in self.active_heads for k in h.config.layers_read}))

    @property
    def active_saes(self) -> tuple[str, ...]:
        """SAEs read by active heads, in manifest order (only these are built and encoded)."""
        read = {h.config.sae for h in self.active_heads if isinstance(h.config, SAEFeatureConfig)}
        return tuple(e.name for e in self.saes if e.name in read)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "host": vars(self.host),
            "layers": list(self.layers),
            "heads": [{"type": h.type, "config": h.config.to_dict(), "thresholds": h.thresholds} for h in self.heads],
            "saes": [{"name": e.name, "files": {f: {"sha256": h} for f, h in e.files.items()}} for e in self.saes],
            "files": {HEADS_FILE: {"sha256": self.heads_sha256}},
            **{
                folder: {"files": {f: {"sha256": h} for f, h in files.items()}}
                for folder, files in self.artifacts.items()
            },
            "metrics": self.metrics,
            "training_data": self.training_data,
        }


@dataclass(frozen=True)
class Bundle:
    path: Path | None
    manifest: Manifest
    tensors: dict[str, torch.Tensor]  # "<head>.<param>" -> tensor, float32
    saes: dict[str, SparseAutoencoder] = field(default_factory=dict)  # every SAE of the manifest, weights loaded
    explain: ExplainArtifacts | None = None  # feature labels and influence layers (detector.explain_store)
    trace: LayerProbes | None = None  # per-layer category probes (detector.trace_store)

    def build_saes(self) -> list[SparseAutoencoder]:
        """The SAEs active heads read (each encoded once per forward pass by the model)."""
        return [self.saes[name] for name in self.manifest.active_saes]

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
        raise _corrupt(where, f"field format_version is {version!r}, this detector reads {FORMAT_VERSION}"
                              + (FORMAT_1_HINT if version == 1 else ""))  # fmt: skip
    host_raw = _require(data, "host", dict, where)
    host = HostRef(
        id=_require(host_raw, "id", str, where + " host"),
        sha256=_require(host_raw, "sha256", str, where + " host"),
        num_layers=_require(host_raw, "num_layers", int, where + " host"),
        d_model=_require(host_raw, "d_model", int, where + " host"),
        family=_require(host_raw, "family", str, where + " host"),
        activations=host_raw.get("activations", "fp32"),  # bundles written before the field: fp32
    )
    if not isinstance(host.activations, str) or not host.activations:
        raise _corrupt(where + " host", "field 'activations' must be a non-empty string")
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
    saes = []
    for i, raw in enumerate(_require(data, "saes", list, where)):
        at = f"{where} field saes[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise _corrupt(at, "must be an object with a name")
        files = _require(raw, "files", dict, at)
        if not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
            raise _corrupt(at, "every file needs a sha256")
        saes.append(SAEEntry(raw["name"], {f: v["sha256"] for f, v in files.items()}))
    files = _require(data, "files", dict, where)
    heads_file = files.get(HEADS_FILE)
    if not isinstance(heads_file, dict) or not isinstance(heads_file.get("sha256"), str):
        raise _corrupt(where, f"field files.{HEADS_FILE}.sha256 is missing")
    artifacts = parse_artifacts(data, where)
    manifest = Manifest(
        name=_require(data, "name", str, where),
        version=_require(data, "version", str, where),
        host=host,
        heads=tuple(entries),
        heads_sha256=heads_file["sha256"],
        saes=tuple(saes),
        metrics=data.get("metrics") or {},
        training_data=data.get("training_data") or {},
        created_at=str(data.get("created_at", "")),
        artifacts=artifacts,
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
        if max(entry.config.layers_read) > manifest.host.num_layers:
            raise _corrupt(where, f"head {entry.config.name} reads layer {max(entry.config.layers_read)} > "
                                  "host.num_layers")  # fmt: skip
    sae_names = [e.name for e in manifest.saes]
    if len(set(sae_names)) != len(sae_names):
        raise _corrupt(
            where, f"field saes has duplicate names {sorted({n for n in sae_names if sae_names.count(n) > 1})}"
        )
    for entry in manifest.heads:
        if isinstance(entry.config, SAEFeatureConfig) and entry.config.sae not in sae_names:
            raise _corrupt(where, f"head {entry.config.name} reads SAE {entry.config.sae!r}, which field saes lacks")
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
    check_sha256(heads_path, manifest.heads_sha256, f"files.{HEADS_FILE}")
    tensors = _read_tensors(heads_path)
    saes = {entry.name: _load_sae(path, entry) for entry in manifest.saes}
    check_artifact_files(path, manifest.artifacts)
    queries = {label: int(getattr(e.config, "heads", 0)) for e in manifest.active_heads
               if e.type == "attention_pool_linear" for label in e.config.labels}  # fmt: skip
    explain = load_explain(path, manifest.artifacts, queries, saes)
    trace = load_trace(path, manifest.artifacts, manifest.host.d_model, manifest.host.num_layers)
    bundle = Bundle(path, manifest, tensors, saes, explain, trace)
    _check_saes(bundle, str(manifest_path))
    _check_tensors(bundle, str(heads_path))
    return bundle


def _read_tensors(heads_path: Path) -> dict[str, torch.Tensor]:
    try:
        return {k: v.float() for k, v in load_file(str(heads_path)).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupt(str(heads_path), f"unreadable safetensors ({type(exc).__name__})") from None


def _load_sae(path: Path, entry: SAEEntry) -> SparseAutoencoder:
    folder = path / entry.folder
    if set(entry.files) != {CFG_FILE, WEIGHTS_FILE}:
        raise _corrupt(str(path / MANIFEST), f"SAE {entry.name} must list exactly {CFG_FILE} and {WEIGHTS_FILE}")
    for name, sha in entry.files.items():
        if not (folder / name).is_file():
            raise BundleNotFoundError(f"bundle file {folder / name} does not exist")
        check_sha256(folder / name, sha, f"saes[{entry.name}].files.{name}")
    return read_sae_folder(folder, entry.name)


def _check_saes(bundle: Bundle, where: str) -> None:
    d_model = bundle.manifest.host.d_model
    for name, sae in bundle.saes.items():
        if sae.config.d_in != d_model:
            raise _corrupt(where, f"SAE {name} has d_in {sae.config.d_in}, the host has d_model {d_model}")
        if sae.config.layer > bundle.manifest.host.num_layers:
            raise _corrupt(where, f"SAE {name} encodes layer {sae.config.layer} > host.num_layers")
    for entry in bundle.manifest.heads:
        if isinstance(entry.config, SAEFeatureConfig):
            sae = bundle.saes[entry.config.sae].config
            head = entry.config
            if (sae.layer, sae.d_sae) != (head.layer, head.d_sae):
                raise _corrupt(where, f"head {head.name} reads layer/d_sae {head.layer}/{head.d_sae} but SAE "
                                      f"{sae.name} has {sae.layer}/{sae.d_sae}")  # fmt: skip


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
    saes: Sequence[SparseAutoencoder] = (),
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    sae_dtype: torch.dtype = torch.float32,
    explain: ExplainArtifacts | None = None,
    trace: LayerProbes | None = None,
) -> Bundle:
    """Write manifest + head tensors + one SAELens folder per SAE, then load the result back through every check."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sae_entries = []
    for sae in saes:
        folder = path / SAES_DIR / sae.config.name
        write_sae_folder(sae, folder, sae_dtype)
        sae_entries.append(SAEEntry(sae.config.name, {f: sha256_file(folder / f) for f in (CFG_FILE, WEIGHTS_FILE)}))
    tensors = {
        f"{head.config.name}.{k}": v.detach().to(torch.float32).contiguous()
        for head, _ in heads
        for k, v in head.state_dict().items()
    }
    save_file(tensors, str(path / HEADS_FILE))
    artifacts = write_artifacts(path, explain, trace)
    manifest = Manifest(
        name=name,
        version=version,
        host=host,
        heads=tuple(HeadEntry(h.type_name, h.config, dict(t)) for h, t in heads),
        heads_sha256=sha256_file(path / HEADS_FILE),
        saes=tuple(sae_entries),
        metrics=metrics or {},
        training_data=training_data or {},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        artifacts=artifacts,
    )
    (path / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return load_bundle(path)
