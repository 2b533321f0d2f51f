"""Random-weight bundles for a given host folder (tests only: the weights carry no meaning)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.bundle import Bundle, HostRef, save_bundle
from probeguard.detector.explain_store import (
    Context,
    ExplainArtifacts,
    FeatureLabel,
    InfluenceLayer,
    SourceRef,
    TrainingRow,
)
from probeguard.detector.heads import (
    AttentionPoolConfig,
    Head,
    HeadConfig,
    SAEFeatureConfig,
    SequenceLinearConfig,
    TokenLinearConfig,
    TokenMLPConfig,
    build_head,
)
from probeguard.detector.host import host_from_folder
from probeguard.detector.sae import SAEConfig, SparseAutoencoder
from probeguard.detector.trace_store import LayerProbes
from probeguard.detector.truncate import load_host_config

TOKEN_LABELS = ("PERSON", "EMAIL", "PHONE")
D_SAE = 32  # explaining_bundle's SAE


def host_ref(host_folder: Path) -> HostRef:
    info = host_from_folder(host_folder)
    cfg = load_host_config(host_folder)
    return HostRef(info.id, info.sha256, cfg.num_hidden_layers, cfg.hidden_size, cfg.model_type)


def default_configs(token_layer: int = 2, lookahead: int = 1) -> list[HeadConfig]:
    """The served head types (the default bundle's mix): a token MLP for PII, attention-pooled category heads."""
    return [
        TokenMLPConfig(name="pii", layer=token_layer, labels=TOKEN_LABELS, lookahead=lookahead, hidden=8),
        AttentionPoolConfig(name="unsafe", layer=1, labels=("unsafe",), heads=4),
        AttentionPoolConfig(name="injection", layer=1, labels=("prompt_injection",), heads=2),
    ]


def sae_configs(token_layer: int = 2, lookahead: int = 1) -> list[HeadConfig]:
    """The head types with their own code paths beyond the served mix: linear token and pooled heads, an SAE head."""
    return [
        TokenLinearConfig(name="pii", layer=token_layer, labels=TOKEN_LABELS, lookahead=lookahead),
        SequenceLinearConfig(name="unsafe", layer=1, labels=("unsafe",), pooling="mean"),
        SAEFeatureConfig(
            name="injection_sae", layer=1, labels=("prompt_injection",), sae="tiny_sae", d_sae=16, pooling="max"
        ),
    ]


def random_sae(
    d_model: int, name: str = "tiny_sae", layer: int = 1, d_sae: int = 16, seed: int = 0
) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(name=name, layer=layer, d_in=d_model, d_sae=d_sae, activation="topk", k=4))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0.0, 0.5)
    return sae


def random_heads(configs: Sequence[HeadConfig], d_model: int, seed: int = 0) -> list[Head]:
    torch.manual_seed(seed)
    heads = [build_head(c, d_model) for c in configs]
    with torch.no_grad():
        for head in heads:
            for p in head.parameters():
                p.normal_(0.0, 0.5)
    return heads


def make_bundle(
    folder: Path,
    host_folder: Path,
    configs: Sequence[HeadConfig] | None = None,
    seed: int = 0,
    threshold: float = 0.5,
    saes: Sequence[SparseAutoencoder] | None = None,
    activations: str = "fp32",
) -> Bundle:
    """A bundle of random heads; SAE-feature heads read `saes` (default: one random `tiny_sae` on layer 1).
    `activations`: what the manifest says the heads were trained on (fp32 or detector.export.QUANT_RECIPE)."""
    ref = dataclasses.replace(host_ref(host_folder), activations=activations)
    configs = configs if configs is not None else default_configs()
    heads = random_heads(configs, ref.d_model, seed)
    if saes is None:
        read = {c.sae for c in configs if isinstance(c, SAEFeatureConfig)}
        saes = [random_sae(ref.d_model, seed=seed)] if read else []
    return save_bundle(
        folder,
        name="test-bundle",
        version="0.0.1",
        host=ref,
        heads=[(h, dict.fromkeys(h.config.labels, threshold)) for h in heads],
        saes=saes,
        metrics={"note": "random weights"},
        training_data={"examples": 0},
    )


def explaining_bundle(
    folder: Path, host: Path, artifacts: ExplainArtifacts | None = None, trace: LayerProbes | None = None
) -> Bundle:
    """Random served head types, all on layer 1, with an SAE on layer 1; thresholds low enough that categories flag."""
    ref = host_ref(host)
    heads = random_heads(default_configs(token_layer=1), ref.d_model)
    sae = random_sae(ref.d_model, name="resid_l1", layer=1, d_sae=D_SAE)
    return save_bundle(folder, name="t", version="0.0.1", host=ref,
                       heads=[(h, dict.fromkeys(h.config.labels, 0.05)) for h in heads], saes=[sae],
                       explain=artifacts, trace=trace)  # fmt: skip


def explain_artifacts(rows: int = 6) -> ExplainArtifacts:
    """Random explain artifacts for `explaining_bundle`'s SAE: even features labelled, odd rows CC BY-NC."""
    rng = np.random.default_rng(0)
    ctx = Context("pw_direct", 3, "project-written", "ignore [PERSON]", (0, 6), 2.5)
    labels = {i: FeatureLabel(i, (("ignore", 4), (" all", 2)), (ctx,), 0.01) for i in range(0, D_SAE, 2)}
    sources = (SourceRef("pw_direct", "prompt_injection", "positive"), SourceRef("alpaca", "unsafe", "negative"))
    influence = {}
    for cat, q in (("unsafe", 4), ("prompt_injection", 2)):
        train = tuple(TrainingRow("alpaca" if j % 2 else "pw_direct", "negative" if j % 2 else "positive",
                                  1 - j % 2, j, "CC BY-NC 4.0" if j % 2 else "project-written", f"row {j}")
                      for j in range(rows))  # fmt: skip
        x = np.hstack([rng.normal(size=(rows, q)), np.ones((rows, 1))])
        influence[cat] = InfluenceLayer(cat, train, x, rng.normal(size=rows), np.eye(q + 1), rng.normal(size=q + 1))
    return ExplainArtifacts("resid_l1", labels, sources, rng.random((D_SAE, 2)), influence)


def random_trace_probes(
    num_layers: int, d_model: int, categories: Sequence[str] = ("prompt_injection", "unsafe"), served: int = 1,
    seed: int = 0, threshold: float = 0.5,
) -> LayerProbes:  # fmt: skip
    """Random per-layer probes (detector.trace_store) for a host of `num_layers` blocks."""
    rng = np.random.default_rng(seed)
    shape = (len(categories), num_layers + 1)
    return LayerProbes(tuple(categories), tuple(range(num_layers + 1)), served,
                       rng.normal(size=(*shape, d_model)).astype(np.float32) * 0.3,
                       rng.normal(size=shape).astype(np.float32), np.full(shape, threshold, dtype=np.float32),
                       {"pooling": "mean"})  # fmt: skip
