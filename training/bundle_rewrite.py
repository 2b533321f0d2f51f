"""Write a new version of a bundle with its heads unchanged and an artifact added or replaced (the SAE and explain
artifacts: training.explain_stage; the layer trace: training.layer_trace). What is not replaced is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from probeguard.detector.bundle import Bundle, HostRef, load_bundle, save_bundle
from probeguard.detector.explain_store import ExplainArtifacts
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.trace_store import LayerProbes

KEEP: Any = object()  # sentinel: keep the source bundle's artifact


def rewrite_bundle(
    source: Path,
    out: Path,
    version: str,
    *,
    saes: list[SparseAutoencoder] | None = None,
    explain: ExplainArtifacts | None = KEEP,
    trace: LayerProbes | None = KEEP,
    metrics_update: dict[str, Any] | None = None,
    adds: str = "",
) -> Bundle:
    """Save `source`'s heads (and, unless given, its SAEs, explain artifacts and trace) as `version` in `out`. With
    `metrics_update`, the source's metrics.json is updated (`adds` says what this version adds) and the report
    rewritten."""
    from probeguard.training.report import EXPLAIN_ADDS, write_report

    bundle = load_bundle(source)
    m = bundle.manifest
    if len(m.active_heads) != len(m.heads):
        raise SystemExit("the bundle has inactive heads, which a rewrite would drop: retrain it instead")
    heads = [(h, e.thresholds) for h, e in zip(bundle.build_heads(), m.active_heads, strict=True)]
    metrics_path = source / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    written = save_bundle(
        out, name=m.name, version=version, host=HostRef(**vars(m.host)), heads=heads,
        saes=list(bundle.saes.values()) if saes is None else saes, metrics=m.metrics, training_data=m.training_data,
        sae_dtype=torch.float16, explain=bundle.explain if explain is KEEP else explain,
        trace=bundle.trace if trace is KEEP else trace,
    )  # fmt: skip
    if metrics and metrics_update is not None:
        metrics.update({**metrics_update, "bundle": f"{m.name} {version}"})
        if (out, version) != (source, m.version):
            prior = metrics.get("derived_adds") or ([EXPLAIN_ADDS] if "derived_from" in metrics else [])
            metrics["derived_from"] = metrics.get("derived_from") or f"{m.name} {m.version}"
            metrics["derived_adds"] = [*prior, adds] if adds and adds not in prior else prior
        write_report(out, metrics)
    return written
