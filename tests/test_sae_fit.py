"""The bundle's SAE: fitted with SAELens on standardised activations, stored in raw space (the fold is exact), and
measured on held-out texts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeguard.detector.errors import ConfigError
from probeguard.training.sae_data import sae_quality, split_tokens
from probeguard.training.sae_fit import fit_sae
from probeguard.training.train_config import SAESection


def _sparse_rows(n: int, d: int, atoms: int, seed: int) -> np.ndarray:
    """Rows that are sparse sums of a few of `atoms` directions, with one dimension 200x the others (as Gemma's)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((atoms, d))
    codes = (rng.random((n, atoms)) < 3 / atoms) * rng.exponential(1.0, (n, atoms))
    rows = codes @ dirs + 0.01 * rng.standard_normal((n, d)) + 2.0
    rows[:, 0] *= 200.0
    return rows.astype(np.float32)


def test_fit_sae_stores_raw_space_weights_that_reconstruct_held_out_rows(seed):
    torch.set_num_threads(1)
    rows = _sparse_rows(6000, 16, 48, seed)
    split = split_tokens([rows[i : i + 50] for i in range(0, 6000, 50)], held_out_share=0.2, seed=0)
    sae = fit_sae(split.fit, SAESection(d_sae=64, k=4, steps=300, batch_tokens=128, lr=3e-3), "resid", 1)
    assert (sae.config.layer, sae.config.d_in, sae.config.d_sae, sae.config.k) == (1, 16, 64, 4)
    quality = sae_quality(sae, split.held_out, 1.0 / split.fit.std(0))
    assert quality["l0"] <= 4.0 and quality["tokens"] == len(split.held_out)
    assert quality["fve"] > 0.5, quality  # the standardised error, so the 200x dimension does not own it
    codes = sae.encode(torch.from_numpy(split.held_out[:10]))
    assert torch.all(codes >= 0) and torch.all((codes > 0).sum(-1) <= 4)


def test_recipe_and_data_size_are_checked():
    with pytest.raises(ConfigError, match=r"sae\.k"):
        SAESection(d_sae=8, k=9)
    with pytest.raises(ConfigError, match=r"sae\.steps"):
        SAESection(steps=0)
    with pytest.raises(ConfigError, match="one batch needs"):
        fit_sae(np.zeros((10, 4), dtype=np.float32), SAESection(d_sae=8, k=2, batch_tokens=64), "resid", 1)


def test_bundle_sae_reads_the_runs_own_harvests_of_each_source(seed):
    """The SAE's activations come from the harvest calls a run already made for its heads: each source's whole train
    list (a cache hit), never a new list the host would have to run on again."""
    from types import SimpleNamespace

    from probeguard.training.sae_data import source_pools
    from probeguard.training.sae_fit import bundle_sae

    rows = _sparse_rows(4000, 16, 48, seed)
    row = SimpleNamespace
    pii = [SimpleNamespace(train=[row(text=f"pii {i}") for i in range(40)])]
    cats = [SimpleNamespace(train=[row(text=f"cat {i}") for i in range(40)]) for _ in range(2)]  # shared texts
    asked: list[list[str]] = []

    def harvest(texts, desc):
        asked.append(list(texts))
        at = [int(t.split()[1]) * 90 + (0 if t.startswith("pii") else 45) for t in texts]  # rows of its own
        per_text = [rows[a : a + 45] for a in at]
        return SimpleNamespace(per_text=lambda layer: per_text), []

    recipe = SAESection(texts_per_source=40, d_sae=32, k=4, steps=20, batch_tokens=64)
    sae, report = bundle_sae(recipe, pii, cats, harvest, layer=1, seed=0)
    pools = source_pools(pii, cats)
    assert asked == pools[:2], "the first two sources' train lists; the third repeats the second and adds nothing"
    assert report["texts"] == 80 and report["layer"] == 1 and sae.config.layer == 1
