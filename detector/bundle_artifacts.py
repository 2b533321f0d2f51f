"""A bundle's optional artifact folders (explanations, the layer trace): listed in the manifest with each file's
sha256, written by `save_bundle`, checked and read by `load_bundle`. Either may be absent; one listed must be whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probeguard.detector.errors import BundleCorruptError, BundleNotFoundError
from probeguard.detector.explain_store import EXPLAIN_DIR, FILES, ExplainArtifacts, read_explain, write_explain
from probeguard.detector.host import sha256_file
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.trace_store import TRACE_DIR, TRACE_FILES, LayerProbes, read_trace, write_trace

MANIFEST = "manifest.json"
# Folder -> the files it must list: explanations (detector.explain_store), the layer trace (detector.trace_store).
ARTIFACTS: dict[str, tuple[str, ...]] = {EXPLAIN_DIR: FILES, TRACE_DIR: TRACE_FILES}


def corrupt(where: str, msg: str) -> BundleCorruptError:
    return BundleCorruptError(f"{where}: {msg}")


def check_sha256(file: Path, expected: object, field_name: str) -> None:
    if not isinstance(expected, str):
        raise corrupt(str(file.parent / MANIFEST), f"field {field_name}.sha256 is missing")
    actual = sha256_file(file)
    if actual != expected:
        raise corrupt(str(file), f"sha256 {actual[:12]}… does not match {MANIFEST} field {field_name}.sha256 "
                                 f"({expected[:12]}…)")  # fmt: skip


def parse_artifacts(data: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    """The manifest's artifact sections: folder -> {file -> sha256}, for the folders it lists."""
    artifacts = {}
    for folder, expected in ARTIFACTS.items():
        raw = data.get(folder) or {}
        if not raw:
            continue
        listed = raw.get("files") if isinstance(raw, dict) else None
        well_formed = isinstance(listed, dict) and set(listed) == set(expected)
        hashed = well_formed and all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in listed.values())
        if not hashed:
            raise corrupt(where, f"field {folder}.files must list exactly {list(expected)}, each with a sha256")
        artifacts[folder] = {f: v["sha256"] for f, v in listed.items()}
    return artifacts


def artifacts_section(artifacts: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {folder: {"files": {f: {"sha256": h} for f, h in files.items()}} for folder, files in artifacts.items()}


def write_artifacts(
    path: Path, explain: ExplainArtifacts | None, trace: LayerProbes | None
) -> dict[str, dict[str, str]]:
    """Write the given artifacts under `path`; their manifest section."""
    if explain is not None:
        write_explain(path / EXPLAIN_DIR, explain)
    if trace is not None:
        write_trace(path / TRACE_DIR, trace)
    stored = [folder for folder, art in ((EXPLAIN_DIR, explain), (TRACE_DIR, trace)) if art is not None]
    return {folder: {f: sha256_file(path / folder / f) for f in ARTIFACTS[folder]} for folder in stored}


def check_artifact_files(path: Path, artifacts: dict[str, dict[str, str]]) -> None:
    for folder, files in artifacts.items():
        for name, sha in files.items():
            if not (path / folder / name).is_file():
                raise BundleNotFoundError(f"bundle file {path / folder / name} does not exist")
            check_sha256(path / folder / name, sha, f"{folder}.files.{name}")


def load_explain(
    path: Path, artifacts: dict[str, dict[str, str]], queries: dict[str, int], saes: dict[str, SparseAutoencoder]
) -> ExplainArtifacts | None:
    """The explain artifacts, checked against the SAE they describe and `queries` per attention-head category."""
    if EXPLAIN_DIR not in artifacts:
        return None
    try:
        sae_name = json.loads((path / EXPLAIN_DIR / FILES[0]).read_text("utf-8")).get("sae")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise corrupt(str(path / EXPLAIN_DIR / FILES[0]), f"not a JSON object ({type(exc).__name__})") from None
    if sae_name not in saes:
        raise corrupt(str(path / EXPLAIN_DIR), f"explain artifacts describe SAE {sae_name!r}, which field saes lacks")
    return read_explain(path / EXPLAIN_DIR, saes[sae_name].config.d_sae, queries)


def load_trace(path: Path, artifacts: dict[str, dict[str, str]], d_model: int, num_layers: int) -> LayerProbes | None:
    return read_trace(path / TRACE_DIR, d_model, num_layers) if TRACE_DIR in artifacts else None
