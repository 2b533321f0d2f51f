"""How far one attention-pooled head's seed moves its dev figures, beside the gap between arithmetics.

    python -m experiments.seed_spread.run [--category unsafe] [--seeds 0 1 2] [--variants fp32 int8] [--fits 1]

Fits the served head (`attention_select.fit_attention_category`, the default config's data, target FPR and epochs)
once per seed and arithmetic on every source's train part, on activations harvested from that arithmetic's host
(the cache a training run leaves: `--harvest-layers` must match its layers to reuse it), and scores every source's
dev part at that fit's own out-of-fold threshold. Prints recall (harmful sources) or FPR (the rest) per source and
fit, then the spread between seeds and the gap between the arithmetics' seed means. `loadtest.variants` resamples
texts for one fit per bundle; this is the part it leaves out. About 1.5 min per unsafe fit and 5 per
prompt_injection fit on 2 cores, times --fits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from probeguard.detector import DetectorSettings
from probeguard.training.attention_select import attention_scores, fit_attention_category, token_sources
from probeguard.training.category_sources import category_sources
from probeguard.training.pii_harvest import harvester
from probeguard.training.run_sources import DEFAULT_CONFIG
from probeguard.training.train_config import load_config


def fit_rows(category: str, variant: str, seeds: Sequence[int], fits: int, layer: int, harvest_layers: list[int],
             config_path: Path, threads: int) -> dict[str, dict]:  # fmt: skip
    """{"<variant>/<seed>": {"threshold": t, source: [role, recall or FPR, texts]}} for each seed."""
    config = load_config(config_path)
    cc = config.categories
    sources = [s for s in category_sources(config.seed, config.data.n_alpaca, config.path(config.data.shared_dir))
               if s.category == category]  # fmt: skip
    harvest = harvester(harvest_layers, DetectorSettings.from_env(num_threads=threads), variant)
    train = token_sources(sources, harvest, layer)
    dev = {s.name: (s.role, harvest([r.text for r in s.dev], f"dev {s.name}")[0].per_text(layer)) for s in sources}
    out: dict[str, dict] = {}
    for seed in seeds:
        recipe = dataclasses.replace(cc.attention_recipe(category), fits=fits)
        head, threshold, _ = fit_attention_category(category, layer, train, cc.target_fpr, seed, cc.per_kind_threshold,
                                                    recipe)  # fmt: skip
        row: dict = {"threshold": round(threshold, 4)}
        for name, (role, acts) in dev.items():
            probs = 1.0 / (1.0 + np.exp(-attention_scores(head, acts)))  # Platt scaling is folded into the head
            row[name] = [role, round(float((probs >= threshold).mean()), 4), len(acts)]
        out[f"{variant}/{seed}"] = row
        print(json.dumps({"fit": f"{variant}/{seed}", "threshold": row["threshold"]}), flush=True)
    return out


def render(rows: dict[str, dict]) -> str:
    keys = list(rows)
    names = [k for k in rows[keys[0]] if k != "threshold"]
    lines = ["| source | role | n | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|",
             "| threshold | | | " + " | ".join(str(rows[k]["threshold"]) for k in keys) + " |"]  # fmt: skip
    spread: list[float] = []
    gaps: list[float] = []
    variants = sorted({k.split("/")[0] for k in keys})
    for name in names:
        role, _, n = rows[keys[0]][name]
        lines.append(f"| {name} | {role} | {n} | " + " | ".join(f"{rows[k][name][1]:.3f}" for k in keys) + " |")
        by_variant = {v: [rows[k][name][1] for k in keys if k.startswith(f"{v}/")] for v in variants}
        spread += [max(vals) - min(vals) for vals in by_variant.values()]
        if len(variants) == 2:
            gaps.append(abs(float(np.mean(by_variant[variants[0]]) - np.mean(by_variant[variants[1]]))))
    lines.append(f"\nSeed spread (max - min over seeds, per source and arithmetic): mean {np.mean(spread):.3f}, "
                 f"max {max(spread):.3f}.")  # fmt: skip
    if gaps:
        lines.append(f"Gap between the arithmetics' seed means, per source: mean {np.mean(gaps):.3f}, "
                     f"max {max(gaps):.3f}.")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--category", default="unsafe", choices=["unsafe", "prompt_injection"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    p.add_argument("--fits", type=int, default=1, help="fits summed per head (categories.attention_fits)")
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--harvest-layers", type=int, nargs="+", default=[6, 8, 10])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write every fit's figures here")
    args = p.parse_args(argv)
    if args.layer not in args.harvest_layers:
        p.error(f"--layer {args.layer} must be one of --harvest-layers {args.harvest_layers}")
    torch.set_num_threads(args.threads)
    rows: dict[str, dict] = {}
    for variant in args.variants:
        rows |= fit_rows(args.category, variant, args.seeds, args.fits, args.layer, args.harvest_layers, args.config,
                         args.threads)  # fmt: skip
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
