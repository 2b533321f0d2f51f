"""Offline check: does an echo read (the text fed twice, the second copy's tokens read) separate `unsafe` from its
look-alikes better than the plain read? On a causal host a token sees only what precedes it; in the second copy every
token has seen the whole text once ("repetition improves language model embeddings", Springer et al. 2024).

Same folds, threshold rule and attention head as `python -m probeguard.training.category_select --categories unsafe
--layers 8 --poolings attention --per-kind-threshold`; texts whose echo does not fit one window are read plainly.

    python -m experiments.echo_read.run --mode echo --out echo.json  # and --mode plain for the baseline, same code path

Measured 2026-11-25 (2-core box, 13 min echo incl. harvest, 10 min plain): no better separation (README, Measured).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from probeguard.training.activation_cache import ActivationStore

BRIDGE = "\n\n"


class EchoStore:
    """An activation store whose per-text rows keep only the last `keep[i]` tokens (the second copy; None: all)."""

    def __init__(self, store: ActivationStore, keep: Sequence[int | None]) -> None:
        self.store, self.keep = store, list(keep)

    def per_text(self, layer: int) -> list[np.ndarray]:
        rows = self.store.per_text(layer)  # per text [n_tokens, d_model]
        return [a if k is None else a[len(a) - k :] for a, k in zip(rows, self.keep, strict=True)]

    def __len__(self) -> int:
        return len(self.store)


def echo_texts(
    texts: Sequence[str], n_tokens: Callable[[str], int], max_tokens: int
) -> tuple[list[str], list[int | None]]:
    """Each text repeated after `BRIDGE` where both copies fit `max_tokens`, with the tokens to keep (the copy)."""
    bridge = n_tokens(BRIDGE)
    out, keep = [], []
    for t in texts:
        n = n_tokens(t)
        fits = 2 * n + bridge <= max_tokens
        out.append(t + BRIDGE + t if fits else t)
        keep.append(n if fits else None)
    return out, keep


def main(argv: Sequence[str] | None = None) -> int:
    from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
    from probeguard.detector.settings import DetectorSettings
    from probeguard.detector.tokenize import HostTokenizer
    from probeguard.training.category_select import ATTENTION, select
    from probeguard.training.category_sources import category_sources
    from probeguard.training.pii_harvest import harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["plain", "echo"], default="echo")
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    settings = DetectorSettings.from_env()
    tokenizer = HostTokenizer.from_folder(resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path).path)
    base = harvester([args.layer], settings)
    max_tokens = settings.window_tokens - tokenizer.num_special

    def harvest(texts: Sequence[str], desc: str):
        if args.mode == "plain":
            return base(texts, desc)
        echoed, keep = echo_texts(texts, lambda t: len(tokenizer.encode(t).ids), max_tokens)
        store, encoded = base(echoed, f"{desc} echo")
        return EchoStore(store, keep), encoded

    sources = [s for s in category_sources(0) if s.category == "unsafe"]
    *_, summary = select("unsafe", sources, harvest, [(args.layer,)], [ATTENTION], 0.01, 0.05, 0.1, 0,
                         per_kind=True, tolerance=0.15, max_negative_fpr=0.02)  # fmt: skip
    args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for name, row in sorted(summary["candidates"][summary["chosen"]]["by_source"].items()):
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
