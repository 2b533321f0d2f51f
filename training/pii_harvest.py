"""The PII sources at the sizes a training run uses, and a harvester bound to the default host (or
`PROBEGUARD_HOST_PATH`): texts -> activation store at the given layers, cached by host, layers and texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from probeguard.detector.backends.onnx import OnnxLayerReader
from probeguard.detector.export import activations_of, ensure_host_graph
from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
from probeguard.detector.settings import DetectorSettings
from probeguard.detector.tokenize import HostTokenizer
from probeguard.detector.truncate import load_host_config, load_truncated_host
from probeguard.training.activation_cache import ActivationStore, LayerReader, TorchLayerReader, harvest_to_store
from probeguard.training.pii_sources import (
    SpanSource,
    business_source,
    pii_free_source,
    real_sources,
    subsample,
    synthetic_source,
)

SHARED_PII = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pii_real"
# Train-part sizes per source (texts): enough for each to matter, small enough to harvest on 2 cores.
SIZES = {"wikigold": 2000, "btc": 3000, "wnut17": 2000, "business": 1500, "synthetic": 2000, "code": 300, "records": 0}


def build_pii_sources(seed: int, pii_real: Path = SHARED_PII, sizes: dict[str, int] | None = None) -> list[SpanSource]:
    """Every built-in PII source; `sizes` caps each source's train part (dev parts: business/synthetic 400 each)."""
    n = {**SIZES, **(sizes or {})}
    out = []
    for src in real_sources(pii_real):
        out.append(SpanSource(src.name, src.kind, src.labels, subsample(src.train, n[src.name], seed), src.dev))
    n_dev = min(400, max(n["business"], n["synthetic"]))
    out.append(business_source(n["business"], n_dev, seed))
    out.append(synthetic_source(n["synthetic"], n_dev, seed))
    out.append(pii_free_source(n["code"], seed, n["records"]))
    return out


def harvester(layers: Sequence[int], settings: DetectorSettings | None = None, variant: str = "fp32"):
    """texts -> activation store. `variant` is the arithmetic the bundle will be served with: fp32 reads the torch
    host; int8 reads the host-only int8 graph (built once into the cache), so heads train on what is served."""
    settings = settings or DetectorSettings.from_env()
    host = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
    config = load_host_config(host.path)
    tokenizer = HostTokenizer.from_folder(host.path)
    wanted = tuple(sorted(set(layers)))
    reader: LayerReader
    if variant == "fp32":
        reader, key = TorchLayerReader(load_truncated_host(host.path, wanted, config)), host.sha256
    else:
        graph = ensure_host_graph(lambda: load_truncated_host(host.path, wanted, config), host, wanted,
                                  settings.cache_dir, variant)  # fmt: skip
        reader = OnnxLayerReader(graph, wanted, int(config.hidden_size), settings.num_threads)
        key = f"{host.sha256}|{activations_of(variant)}"  # fp32 keeps the bare sha: older caches stay valid
    max_tokens = settings.window_tokens - tokenizer.num_special

    def harvest(texts: Sequence[str], desc: str) -> tuple[ActivationStore, list]:
        return harvest_to_store(reader, key, tokenizer, list(texts), settings.cache_dir, max_tokens, desc=desc)

    return harvest
