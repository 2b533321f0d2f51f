"""Fit the bundle's SAE on the served layer with SAELens (`sae_lens.SAETrainer`, fed our cached activations through
its data-provider interface: no model, dataset or network is touched), then store it in raw activation space.

Activations are standardised per dimension before fitting (a few of Gemma's residual dimensions are hundreds of times
larger than the rest; the heads standardise too), and the standardisation is folded into the weights afterwards,
exactly: with z = (h - mu) / sd, W_enc' = W_enc / sd[:, None], W_dec' = W_dec * sd, b_dec' = mu + b_dec * sd, so the
stored SAE reads and writes raw activations like every other part of a bundle (`detector.sae.SparseAutoencoder`).

    python -m probeguard.training.sae_fit [--texts-per-source 200] [--d-sae 4096] [--k 32] [--steps 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from probeguard.detector.errors import ConfigError
from probeguard.detector.sae import SAEConfig, SparseAutoencoder
from probeguard.training.activation_cache import ActivationStore
from probeguard.training.category_sources import CategorySource
from probeguard.training.pii_sources import SpanSource
from probeguard.training.sae_data import (
    TokenSplit,
    sae_quality,
    sample_per_source,
    source_pools,
    split_tokens,
    training_texts,
)
from probeguard.training.train_config import SAESection

# SAELens imports wandb (used only when logging to it is asked for) and can reach the Hugging Face hub in loaders we do
# not call; these keep any of it offline.
HELD_OUT_SHARE = 0.1  # of the SAE's texts, whole texts: its quality is measured on them
OFFLINE_ENV = {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _batches(rows: np.ndarray, mu: np.ndarray, sd: np.ndarray, size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless standardised batches [size, d_model] in a fresh seeded order every epoch (SAELens's data provider)."""
    gen = np.random.default_rng(seed)
    while True:
        order = gen.permutation(len(rows))
        for at in range(0, len(order) - size + 1, size):
            batch = (rows[np.sort(order[at : at + size])] - mu) / sd
            yield torch.from_numpy(batch.astype(np.float32))


def fit_sae(rows: np.ndarray, recipe: SAESection, name: str, layer: int, seed: int = 0) -> SparseAutoencoder:
    """A TopK SAE fitted on `rows` ([n_tokens, d_model] raw activations), returned in raw space."""
    os.environ.update(OFFLINE_ENV)
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    if len(rows) < recipe.batch_tokens:
        raise ConfigError(f"{len(rows)} tokens to fit an SAE on; one batch needs {recipe.batch_tokens}")
    torch.manual_seed(seed)
    mu = rows.mean(0).astype(np.float64)  # [d_model]
    sd = rows.std(0).astype(np.float64) + 1e-6  # [d_model]
    d_in = rows.shape[1]
    config = TopKTrainingSAEConfig(d_in=d_in, d_sae=recipe.d_sae, k=recipe.k, dtype="float32", device="cpu",
                                   normalize_activations="none", rescale_acts_by_decoder_norm=False,
                                   apply_b_dec_to_input=True)  # fmt: skip
    trainer = SAETrainerConfig(
        total_training_samples=recipe.steps * recipe.batch_tokens, train_batch_size_samples=recipe.batch_tokens,
        lr=recipe.lr, lr_end=recipe.lr / 10, device="cpu", n_batches_for_norm_estimate=1,
        dead_feature_window=max(50, recipe.steps // 10), feature_sampling_window=max(100, recipe.steps // 5),
        logger=LoggingConfig(log_to_wandb=False),
    )  # fmt: skip
    trained = SAETrainer(cfg=trainer, sae=TopKTrainingSAE(config),
                         data_provider=_batches(rows, mu, sd, recipe.batch_tokens, seed)).fit()  # fmt: skip
    weights = {k: v.detach().to(torch.float64) for k, v in trained.state_dict().items()}
    mu_t, sd_t = torch.from_numpy(mu), torch.from_numpy(sd)
    sae = SparseAutoencoder(SAEConfig(name=name, layer=layer, d_in=d_in, d_sae=recipe.d_sae, activation="topk",
                                      k=recipe.k, apply_b_dec_to_input=True))  # fmt: skip
    sae.load_state_dict({
        "W_enc": (weights["W_enc"] / sd_t[:, None]).float(),  # [d_in, d_sae]
        "b_enc": weights["b_enc"].float(),  # [d_sae]
        "W_dec": (weights["W_dec"] * sd_t[None, :]).float(),  # [d_sae, d_in]
        "b_dec": (mu_t + weights["b_dec"] * sd_t).float(),  # [d_in]
        "threshold": torch.zeros(recipe.d_sae),
    })  # fmt: skip
    _check_fold(trained, sae, rows[: min(len(rows), 512)], mu, sd)
    return sae


def _check_fold(
    trained: torch.nn.Module, sae: SparseAutoencoder, rows: np.ndarray, mu: np.ndarray, sd: np.ndarray
) -> None:
    """The stored SAE must encode raw rows to the codes SAELens gives their standardised form (a fold error, or a
    TopK convention that differs from ours, would otherwise pass silently)."""
    with torch.no_grad():
        ours = sae.encode(torch.from_numpy(rows.astype(np.float32)))
        theirs = trained.encode(torch.from_numpy(((rows - mu) / sd).astype(np.float32)))  # type: ignore[operator]
    if not torch.allclose(ours, theirs, rtol=1e-3, atol=1e-3):
        raise ConfigError(f"SAE fold check failed: max code difference {float((ours - theirs).abs().max()):.3g}")


def bundle_sae(
    recipe: SAESection,
    pii: Sequence[SpanSource],
    categories: Sequence[CategorySource],
    harvest: Callable[[Sequence[str], str], tuple[ActivationStore, list]],
    layer: int,
    seed: int,
) -> tuple[SparseAutoencoder, dict[str, object]]:
    """The SAE a training run stores in its bundle, on `layer` (the category heads'), fitted on a sample of every
    source's train texts, measured on held-out ones. The activations come from the harvests the run makes for its
    heads (each source's train list is the key: a cache hit, no second host pass)."""
    pools = source_pools(pii, categories)
    rows: list[np.ndarray] = []
    for pool, picked in zip(pools, sample_per_source(pools, recipe.texts_per_source, random.Random(f"sae/{seed}")),
                            strict=True):  # fmt: skip
        if picked:
            per_text = harvest(pool, "activations for the SAE")[0].per_text(layer)
            rows += [per_text[i] for i in picked]
    split = split_tokens(rows, held_out_share=HELD_OUT_SHARE, seed=seed)
    started = time.perf_counter()
    sae = fit_sae(split.fit, recipe, f"resid_l{layer}", layer, seed)
    quality = sae_quality(sae, split.held_out, 1.0 / (split.fit.std(0) + 1e-6))
    return sae, {"name": sae.config.name, "layer": layer, "texts": len(rows), "fit_tokens": len(split.fit),
                 "seconds": round(time.perf_counter() - started, 1), "recipe": dataclasses.asdict(recipe),
                 "held_out": quality}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from probeguard.detector.settings import DetectorSettings
    from probeguard.training.category_sources import category_sources
    from probeguard.training.pii_harvest import build_pii_sources, harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--texts-per-source", type=int, default=SAESection.texts_per_source)
    p.add_argument("--d-sae", type=int, default=SAESection.d_sae)
    p.add_argument("--k", type=int, default=SAESection.k)
    p.add_argument("--steps", type=int, default=SAESection.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the SAE folder (SAELens layout) here")
    args = p.parse_args(argv)
    settings = DetectorSettings.from_env()
    torch.set_num_threads(settings.num_threads)
    texts = training_texts(build_pii_sources(args.seed), category_sources(args.seed), args.texts_per_source, args.seed)
    store, _ = harvester([args.layer], settings)(texts, f"harvest SAE text (layer {args.layer})")
    split: TokenSplit = split_tokens(store.per_text(args.layer), held_out_share=HELD_OUT_SHARE, seed=args.seed)
    recipe = SAESection(d_sae=args.d_sae, k=args.k, steps=args.steps, texts_per_source=args.texts_per_source)
    started = time.perf_counter()
    sae = fit_sae(split.fit, recipe, "resid", args.layer, args.seed)
    seconds = round(time.perf_counter() - started, 1)
    quality = sae_quality(sae, split.held_out, 1.0 / (split.fit.std(0) + 1e-6))
    print(json.dumps({"texts": len(texts), "fit_tokens": len(split.fit), "seconds": seconds,
                      "recipe": vars(recipe), "held_out": quality}, indent=2))  # fmt: skip
    if args.out:
        from pathlib import Path

        from probeguard.detector.sae import write_sae_folder

        write_sae_folder(sae, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
