"""The layer trace's probes: for each category, a linear probe at every layer the host has, fitted on the same
training rows as the category heads, so a decision can be followed through the host's depth (detector.trace).

Token activations at every layer do not fit on disk (about 120 GB for the training texts at 19 layers x 640 floats),
so one full-host pass stores each text's **mean-pooled** residual stream per layer ([texts, layers, d_model], cached),
and each layer gets the mean-pooling candidate's recipe (training.category_select.fit_category: standardised L2
logistic regression, Platt scaling and the per-kind threshold at the target FPR from out-of-fold scores). The served
attention recipe is not refitted per layer: it costs minutes per fit and the trace's question (at which depth does the
category become linearly readable?) is answered by the mean probe; the served layer's row of the table shows how far
the mean probe is from the served head there.

Reported per layer: dev AUROC of each positive source against the pooled dev negatives (the depth curve).

    python -m probeguard.training.layer_trace --bundle DIR [--config TOML] [--out NEW_DIR --version V] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.tokenize import HostTokenizer, whole_window
from probeguard.detector.trace_store import LayerProbes
from probeguard.detector.truncate import TruncatedHost
from probeguard.training.activation_cache import dataset_key
from probeguard.training.category_select import fit_category
from probeguard.training.category_sources import CategorySource
from probeguard.training.evaluate import auroc_against
from probeguard.training.fit import PooledSource
from probeguard.training.train_config import CategorySection

BATCH = 8  # texts per full-host pass


def pooled_all_layers(
    texts: Sequence[str],
    host: TruncatedHost,
    host_sha256: str,
    tokenizer: HostTokenizer,
    cache_root: Path,
    max_tokens: int,
) -> np.ndarray:
    """[n_texts, layers, d_model] float32: each text's first window, mean over its content tokens, at every layer the
    host returns. Cached under `cache_root/trace/` by host, layers, window and texts."""
    path = cache_root / "trace" / f"{dataset_key(host_sha256 + '|mean', host.layers, max_tokens, texts)}.npy"
    if path.is_file():
        return np.load(path)
    encoded = [tokenizer.encode(t) for t in texts]
    lengths = np.minimum([len(e.ids) for e in encoded], max_tokens)
    d_model = int(host.base.config.hidden_size)
    out = np.zeros((len(texts), len(host.layers), d_model), dtype=np.float32)
    order = [int(i) for i in np.argsort(lengths, kind="stable") if lengths[i] > 0]  # similar lengths per batch
    at = len(tokenizer.prefix_ids)
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        batch = tokenizer.collate([whole_window(i, int(lengths[i])) for i in idx], encoded)
        with torch.inference_mode():
            hidden = host(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
        for row, i in enumerate(idx):
            out[i] = torch.stack([h[row, at : at + lengths[i]].mean(0) for h in hidden]).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, out)
    partial.rename(path)
    return out


@dataclasses.dataclass(frozen=True)
class PooledParts:
    """One source's train and dev parts, pooled at every layer."""

    source: CategorySource
    train: np.ndarray  # [n_train, layers, d_model]
    dev: np.ndarray  # [n_dev, layers, d_model]


def fit_layer_probes(
    parts: Sequence[PooledParts], categories: Sequence[str], layers: Sequence[int], served_layer: int,
    recipe: CategorySection, seed: int,
) -> LayerProbes:  # fmt: skip
    """A probe per category and layer on the train parts; per layer the dev AUROC of each positive source against
    the category's pooled dev negatives."""
    d_model = parts[0].train.shape[2]
    weight = np.zeros((len(categories), len(layers), d_model), dtype=np.float32)
    bias = np.zeros((len(categories), len(layers)), dtype=np.float32)
    thresholds = np.zeros_like(bias)
    report: dict[str, dict[str, object]] = {}
    for c, category in enumerate(categories):
        mine = [p for p in parts if p.source.category == category]
        c_reg = recipe.injection_regularization if category == "prompt_injection" else recipe.regularization
        aurocs: dict[str, list[float]] = {p.source.name: [] for p in mine if p.source.role == "positive"}
        for k in range(len(layers)):
            data = [PooledSource(p.source, p.train[:, k], np.array([r.label for r in p.source.train])) for p in mine]
            head, threshold, _ = fit_category(category, (layers[k],), "mean", data, recipe.target_fpr, c_reg, seed,
                                              recipe.lookalike_weight, recipe.per_kind_threshold)  # fmt: skip
            w = head.weight.detach().numpy()[0]  # [d_model]
            b = float(head.bias.detach()[0])
            weight[c, k], bias[c, k], thresholds[c, k] = w, b, threshold
            dev_negatives = [p.dev[:, k] for p in mine if p.source.role == "negative" and len(p.dev)]
            if not dev_negatives:
                continue
            negatives = np.concatenate(dev_negatives) @ w + b
            for p in mine:
                positive = np.array([r.label == 1 for r in p.source.dev], dtype=bool)
                if p.source.role == "positive" and positive.any():
                    aurocs[p.source.name].append(auroc_against(p.dev[positive, k] @ w + b, negatives))
        aurocs = {name: values for name, values in aurocs.items() if len(values) == len(layers)}
        worst = [min(col) for col in zip(*aurocs.values(), strict=True)] if aurocs else []
        report[category] = {"dev_auroc_by_source": aurocs, "worst_dev_auroc": worst}
    return LayerProbes(tuple(categories), tuple(layers), served_layer, weight, bias, thresholds,
                       {"pooling": "mean", "by_category": report})  # fmt: skip


def harvest_parts(
    sources: Sequence[CategorySource], host: TruncatedHost, host_sha256: str, tokenizer: HostTokenizer,
    cache_root: Path, max_tokens: int,
) -> list[PooledParts]:  # fmt: skip
    out = []
    for s in sources:
        started = time.perf_counter()
        train = pooled_all_layers([r.text for r in s.train], host, host_sha256, tokenizer, cache_root, max_tokens)
        dev = pooled_all_layers([r.text for r in s.dev], host, host_sha256, tokenizer, cache_root, max_tokens)
        out.append(PooledParts(s, train, dev))
        print(json.dumps({"trace_harvest": f"{s.category}/{s.name}", "texts": len(s.train) + len(s.dev),
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)  # fmt: skip
    return out


def build_layer_probes(
    sources: Sequence[CategorySource], host_path: Path, host_sha256: str, tokenizer: HostTokenizer,
    cache_root: Path, window_tokens: int, served_layer: int, recipe: CategorySection, seed: int,
) -> tuple[LayerProbes, dict[str, object]]:  # fmt: skip
    """The full host's pooled activations for every category source, then the probes; (probes, report)."""
    from probeguard.detector.truncate import load_host_config, load_truncated_host, num_host_layers

    config = load_host_config(host_path)
    layers = tuple(range(num_host_layers(config) + 1))
    started = time.perf_counter()
    host = load_truncated_host(host_path, layers, config)
    parts = harvest_parts(sources, host, host_sha256, tokenizer, cache_root, window_tokens - tokenizer.num_special)
    harvested = time.perf_counter()
    categories = sorted({s.category for s in sources})
    probes = fit_layer_probes(parts, categories, layers, served_layer, recipe, seed)
    size = probes.weight.nbytes + probes.bias.nbytes + probes.thresholds.nbytes
    report = {**probes.report, "layers": list(layers), "served_layer": served_layer,
              "layer_numbering": "k = residual stream after k blocks; 0 = embeddings; the last is before the final "
                                 "norm", "harvest_seconds": round(harvested - started, 1),
              "fit_seconds": round(time.perf_counter() - harvested, 1), "tensor_bytes": int(size)}  # fmt: skip
    return probes, report


def main(argv: list[str] | None = None) -> int:
    from probeguard.detector.bundle import load_bundle
    from probeguard.detector.host import resolve_host
    from probeguard.detector.settings import DetectorSettings
    from probeguard.training.bundle_rewrite import rewrite_bundle
    from probeguard.training.run_sources import DEFAULT_CONFIG, category_sources_of
    from probeguard.training.train_config import load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="the bundle to add the trace to (heads kept as they are)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the training TOML the bundle was built with")
    p.add_argument("--out", type=Path, help="write the bundle here (default: rewrite --bundle in place)")
    p.add_argument("--version", help="the written bundle's version (default: --bundle's)")
    p.add_argument("--threads", type=int, help="override the config's threads")
    args = p.parse_args(argv)
    config = load_config(args.config)
    threads = args.threads or config.threads
    torch.set_num_threads(threads)
    settings = DetectorSettings.from_env(num_threads=threads)
    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    host = resolve_host(m.host.id, settings.cache_dir, settings.host_path)
    sources = category_sources_of(config)
    served = max(k for e in m.active_heads if e.config.labels[0] in {s.category for s in sources}
                 for k in e.config.layers_read)  # fmt: skip
    probes, report = build_layer_probes(sources, host.path, host.sha256, HostTokenizer.from_folder(host.path),
                                        settings.cache_dir, settings.window_tokens, served, config.categories,
                                        config.seed)  # fmt: skip
    rewrite_bundle(args.bundle, args.out or args.bundle, args.version or m.version, trace=probes,
                   metrics_update={"trace": report},
                   adds="the layer trace's per-layer probes (`python -m probeguard.training.layer_trace`)")  # fmt: skip
    print(json.dumps({k: v for k, v in report.items() if k != "by_category"}, indent=1))
    for category, r in report["by_category"].items():
        print(category, "worst dev AUROC by layer:", r["worst_dev_auroc"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
