"""Random-weight bundles for a given host folder (tests only: the weights carry no meaning)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from detector.bundle import Bundle, HostRef, save_bundle
from detector.heads import Head, HeadConfig, SAEFeatureConfig, SequenceLinearConfig, TokenLinearConfig, build_head
from detector.host import host_from_folder
from detector.truncate import load_host_config

TOKEN_LABELS = ("PERSON", "EMAIL", "PHONE")


def host_ref(host_folder: Path) -> HostRef:
    info = host_from_folder(host_folder)
    cfg = load_host_config(host_folder)
    return HostRef(info.id, info.sha256, cfg.num_hidden_layers, cfg.hidden_size, cfg.model_type)


def default_configs(token_layer: int = 2, lookahead: int = 1) -> list[HeadConfig]:
    return [
        TokenLinearConfig(name="pii", layer=token_layer, labels=TOKEN_LABELS, lookahead=lookahead),
        SequenceLinearConfig(name="unsafe", layer=1, labels=("unsafe",), pooling="mean"),
        SAEFeatureConfig(name="injection_sae", layer=1, labels=("prompt_injection",), d_sae=16, k=4, pooling="max"),
    ]


def random_heads(configs: Sequence[HeadConfig], d_model: int, seed: int = 0) -> list[Head]:
    torch.manual_seed(seed)
    heads = [build_head(c, d_model) for c in configs]
    with torch.no_grad():
        for head in heads:
            for p in head.parameters():
                p.normal_(0.0, 0.5)
    return heads


def make_bundle(
    folder: Path, host_folder: Path, configs: Sequence[HeadConfig] | None = None, seed: int = 0, threshold: float = 0.5
) -> Bundle:
    ref = host_ref(host_folder)
    heads = random_heads(configs if configs is not None else default_configs(), ref.d_model, seed)
    return save_bundle(
        folder,
        name="test-bundle",
        version="0.0.1",
        host=ref,
        heads=[(h, dict.fromkeys(h.config.labels, threshold)) for h in heads],
        metrics={"note": "random weights"},
        training_data={"examples": 0},
    )
