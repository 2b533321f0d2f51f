"""SAE-feature category candidates (training.sae_select): pooled codes as the served head pools them, a left-one-
source-out table like every other candidate's, and a fitted head whose served logit is the classifier's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.training import category_select
from probeguard.training.category_sources import CategorySource
from probeguard.training.data import LabelledText
from probeguard.training.sae_select import fit_sae_category, pooled_codes, sae_sources
from tests.bundles import random_sae

D, LAYER = 8, 1


def _sources(rng: np.random.Generator) -> tuple[list[CategorySource], dict[str, np.ndarray]]:
    """Positive sources carry a direction the negatives lack; texts are keys into a table of activations."""
    direction = rng.normal(size=D) * 3
    table: dict[str, np.ndarray] = {}
    sources = []
    for name, role, n in (("p1", "positive", 30), ("p2", "positive", 30), ("look", "lookalike", 20),
                          ("n1", "negative", 80), ("n2", "negative", 80)):  # fmt: skip
        rows = []
        for i in range(n):
            key = f"{name}-{i}"
            acts = rng.normal(size=(6, D)).astype(np.float32)
            if role == "positive":
                acts[2] += direction
            table[key] = acts
            rows.append(LabelledText(key, int(role == "positive"), name))
        sources.append(CategorySource(name, "unsafe", role, rows, []))
    return sources, table


def _harvest(table):
    class Store:
        def __init__(self, texts):
            self.rows = [table[t] for t in texts]

        def per_text(self, layer: int) -> list[np.ndarray]:
            assert layer == LAYER
            return self.rows

    return lambda texts, desc: (Store(list(texts)), [])


def test_pooled_codes_are_the_served_pooling():
    sae = random_sae(D, layer=LAYER, d_sae=16)
    acts = [np.random.default_rng(0).normal(size=(5, D)).astype(np.float32)]
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(acts[0]))
    np.testing.assert_allclose(pooled_codes(acts, sae, "sae-max")[0], codes.max(0).values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(pooled_codes(acts, sae, "sae-mean")[0], codes.mean(0).numpy(), rtol=1e-5)


def test_sae_candidates_get_a_table_and_a_served_head():
    rng = np.random.default_rng(0)
    sources, table = _sources(rng)
    sae = random_sae(D, layer=LAYER, d_sae=32)
    harvest = _harvest(table)
    *_, summary = category_select.select(
        "unsafe", sources, harvest, [(LAYER,)], ["mean", "sae-max"], 0.05, 0.2, 1.0, 0, sae=sae
    )
    table_keys = set(summary["candidates"])
    assert table_keys == {"L1/mean", "L1/sae-max"}
    for result in summary["candidates"].values():
        assert {"p1", "p2", "look"} <= set(result["by_source"])
    parts = sae_sources(sources, harvest, LAYER, sae, "sae-max")
    weights = category_select.sample_weights(parts, 1.0)
    head, threshold, info = fit_sae_category("unsafe", sae, "sae-max", parts, 0.05, 1.0, 0, weights)
    assert 0 < threshold < 1 and 0 < info["features_used"] <= 32 and head.config.sae == sae.config.name
    # the served head (codes pooled in the graph) scores a text as the classifier on its pooled codes does
    acts = torch.from_numpy(table["p1-0"]).unsqueeze(0)  # [1, seq, d_model]
    mask = torch.ones(acts.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        served = head(Activations({LAYER: acts}, mask, mask, {sae.config.name: sae.encode(acts)}))
    x = pooled_codes([table["p1-0"]], sae, "sae-max")[0]
    expected = float(x @ head.weight.detach().numpy()[0] + float(head.bias))
    assert float(served[0, 0]) == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_sae_candidates_need_an_sae_on_their_layer():
    sources, table = _sources(np.random.default_rng(1))
    with pytest.raises(ConfigError, match="needs an SAE"):
        sae_sources(sources, _harvest(table), LAYER, None, "sae-max")
    with pytest.raises(ConfigError, match="encodes layer 2"):
        sae_sources(sources, _harvest(table), LAYER, random_sae(D, layer=2), "sae-max")
