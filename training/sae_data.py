"""The SAE's training text and its measures: broad text from every training source's train part (never a dev part),
its activations at the served layer from the activation cache, split by text into fitting and held-out tokens; and
what an SAE keeps of them (fraction of variance explained, L0, dead and dense features on held-out tokens).

Only content tokens are cached (no BOS: its activations are hundreds of times larger than the rest and would own the
reconstruction loss).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeguard.detector.sae import SparseAutoencoder
from probeguard.training.category_sources import CategorySource
from probeguard.training.pii_sources import SpanSource

DENSE_SHARE = 0.1  # a feature firing on more than this share of held-out tokens is "dense" (reads as a bias, not a why)


@dataclass(frozen=True)
class TokenSplit:
    fit: np.ndarray  # [n_fit, d_model] float32 (rows of whole texts)
    held_out: np.ndarray  # [n_held_out, d_model] float32 (rows of other texts)


def source_pools(pii: Sequence[SpanSource], categories: Sequence[CategorySource]) -> list[list[str]]:
    """Every source's train texts, each list exactly as a training run harvests it for its head (so its activations
    are a cache hit)."""
    return [[e.text for e in s.train] for s in pii] + [[r.text for r in s.train] for s in categories]


def sample_per_source(pools: Sequence[Sequence[str]], per_source: int, rng: random.Random) -> list[list[int]]:
    """Per pool, the indices of up to `per_source` of its texts; a text already taken from an earlier pool is
    skipped (sources share some texts)."""
    seen: set[str] = set()
    out: list[list[int]] = []
    for pool in pools:
        picked = []
        for i in rng.sample(range(len(pool)), min(per_source, len(pool))):
            if pool[i] not in seen:
                seen.add(pool[i])
                picked.append(i)
        out.append(picked)
    return out


def training_texts(
    pii: Sequence[SpanSource], categories: Sequence[CategorySource], per_source: int, seed: int
) -> list[str]:
    """Up to `per_source` train-part texts of every source, deduplicated, in a seeded order."""
    rng = random.Random(f"sae/{seed}")
    pools = source_pools(pii, categories)
    out = [pools[p][i] for p, picked in enumerate(sample_per_source(pools, per_source, rng)) for i in picked]
    rng.shuffle(out)
    return out


def split_tokens(per_text: Sequence[np.ndarray], held_out_share: float, seed: int) -> TokenSplit:
    """Whole texts to one side or the other, so held-out tokens come from texts the SAE never saw."""
    rng = np.random.default_rng(seed)
    held = rng.random(len(per_text)) < held_out_share
    fit = [np.asarray(a, dtype=np.float32) for a, h in zip(per_text, held, strict=True) if not h and len(a)]
    out = [np.asarray(a, dtype=np.float32) for a, h in zip(per_text, held, strict=True) if h and len(a)]
    return TokenSplit(np.concatenate(fit), np.concatenate(out))


def sae_quality(sae: SparseAutoencoder, rows: np.ndarray, scale: np.ndarray, batch: int = 4096) -> dict[str, float]:
    """Held-out measures, with the error and variance taken per dimension in the standardised space the SAE was
    fitted in (`scale` = 1/std per dimension), so a few huge residual dimensions do not own the figure: fraction of
    variance explained, mean L0, the share of features never firing (dead) and firing on over DENSE_SHARE of tokens."""
    s = torch.from_numpy(scale.astype(np.float32))
    err = var = 0.0
    l0 = 0.0
    fired = torch.zeros(sae.config.d_sae)
    mean = torch.from_numpy(rows.mean(0).astype(np.float32))
    with torch.no_grad():
        for at in range(0, len(rows), batch):
            x = torch.from_numpy(np.asarray(rows[at : at + batch], dtype=np.float32))
            codes = sae.encode(x)
            err += float((((sae.decode(codes) - x) * s) ** 2).sum())
            var += float((((x - mean) * s) ** 2).sum())
            active = codes > 0
            l0 += float(active.sum())
            fired += active.sum(0)
    n = len(rows)
    share = fired / n
    return {
        "fve": round(1.0 - err / var, 4),
        "l0": round(l0 / n, 2),
        "dead_share": round(float((fired == 0).float().mean()), 4),
        "dense_share": round(float((share > DENSE_SHARE).float().mean()), 4),
        "tokens": n,
    }
