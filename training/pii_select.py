"""Leave-one-source-out selection of the PII token head: for each candidate (layer, lookahead, head kind), fit on every
source but one, decode spans on the left-out source's *train* part (its dev part stays untouched for the dev suite)
and rank candidates by the worst source's entity F1 (PII-free text: structured spans per 1,000 texts, which must stay
low).

    python -m probeguard.training.pii_select [--layers 6 8 10] [--lookaheads 2 4 8] [--heads linear mlp sae]
        [--sae SAE_FOLDER] [--config training/configs/default.toml] [--out selection.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.errors import ConfigError
from probeguard.detector.heads import (
    Head,
    SAEFeatureConfig,
    SAEFeatureHead,
    TokenLinearConfig,
    TokenLinearHead,
    TokenMLPConfig,
    TokenMLPHead,
)
from probeguard.detector.pipeline import sigmoid
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.spans import decode_spans
from probeguard.training import fit
from probeguard.training.activation_cache import ActivationStore
from probeguard.training.data import token_targets
from probeguard.training.pii_sources import SpanSource
from probeguard.training.synth import PII_LABELS
from probeguard.training.train_config import PII_HEAD_KINDS

# Ties go to the cheaper head. Per token, at d_model 640, lookahead 4, 64 hidden units: a linear head reads 640 x 5
# numbers per label; an mlp head adds 640 x 5 x 64 = 205 k multiply-adds; an sae head first encodes the SAE
# (640 x 4,096 = 2.6 M, unless a category head already reads the same codes).
HEAD_COST = {"linear": 0, "mlp": 1, "sae": 2}

Harvest = Callable[[Sequence[str], str], tuple[ActivationStore, list]]  # texts, desc -> store, encoded


@dataclass
class SourceActs:
    """One source's train part, harvested: activations per layer and token targets."""

    source: SpanSource
    store: ActivationStore
    offsets: list[np.ndarray]  # per text [n_i, 2]
    targets: list[np.ndarray]  # per text [n_i, n_labels]

    def acts(self, layer: int) -> list[np.ndarray]:
        return self.store.per_text(layer)


def harvest_sources(sources: Sequence[SpanSource], harvest: Harvest) -> dict[str, SourceActs]:
    out = {}
    for source in sources:
        store, encoded = harvest([e.text for e in source.train], f"harvest {source.name}")
        offsets = [e.offsets[:n] for e, n in zip(encoded, store.lengths, strict=True)]
        targets = [token_targets(o, ex.spans, PII_LABELS) for o, ex in zip(offsets, source.train, strict=True)]
        out[source.name] = SourceActs(source, store, offsets, targets)
    return out


def split_calibration(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * share)
    return order[cut:], order[:cut]


@dataclass(frozen=True)
class PiiCandidate:
    layer: int
    lookahead: int
    kind: str = "linear"  # one of PII_HEAD_KINDS; "sae": a linear head on the codes of the run's SAE at `layer`
    hidden: int = 64  # mlp only

    @property
    def key(self) -> str:
        head = {"linear": "", "mlp": f"/mlp{self.hidden}"}.get(self.kind, f"/{self.kind}")
        return f"L{self.layer}/w{self.lookahead}{head}"

    def as_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "lookahead": self.lookahead, "head": self.kind, "hidden": self.hidden}

    def new_head(self, d_model: int, train_acts: Sequence[np.ndarray], sae: SparseAutoencoder | None = None) -> Head:
        """An untrained head; an mlp head's input standardisation comes from (a fifth of) the training texts; an sae
        head reads `sae`'s codes (encoded by the model on every pass, as for SAE-feature category heads)."""
        if self.kind == "sae":
            sae = sae_for(self, sae)
            return SAEFeatureHead(SAEFeatureConfig(name="pii", layer=self.layer, labels=PII_LABELS, sae=sae.config.name,
                                                   d_sae=sae.config.d_sae, level="token", lookahead=self.lookahead),
                                  d_model)  # fmt: skip
        if self.kind == "linear":
            return TokenLinearHead(TokenLinearConfig(name="pii", layer=self.layer, labels=PII_LABELS,
                                                     lookahead=self.lookahead), d_model)  # fmt: skip
        head = TokenMLPHead(TokenMLPConfig(name="pii", layer=self.layer, labels=PII_LABELS, lookahead=self.lookahead,
                                           hidden=self.hidden), d_model)  # fmt: skip
        head.set_standardisation(*fit.standardisation(train_acts[::5], eps=1e-3))
        return head


def sae_for(candidate: PiiCandidate, sae: SparseAutoencoder | None) -> SparseAutoencoder:
    """The SAE an sae candidate reads: the run's, on the candidate's layer."""
    if sae is None or sae.config.layer != candidate.layer:
        where = "no SAE" if sae is None else f"the SAE {sae.config.name} encodes layer {sae.config.layer}"
        raise ConfigError(f"PII candidate {candidate.key} reads SAE codes at layer {candidate.layer}: {where} "
                          "([sae] enabled, on the categories' layer)")  # fmt: skip
    return sae


def saes_of(candidate: PiiCandidate, sae: SparseAutoencoder | None) -> tuple[SparseAutoencoder, ...]:
    return (sae_for(candidate, sae),) if candidate.kind == "sae" else ()


def fit_head(
    parts: Sequence[SourceActs],
    candidate: PiiCandidate,
    epochs: int,
    seed: int,
    calib_share: float = 0.1,
    sae: SparseAutoencoder | None = None,
) -> tuple[Head, np.ndarray]:
    """Fit on `parts` (minus a calibration share of each), then per-label thresholds: token-F1-optimal on the
    calibration share. Returns the head (Platt folded in) and thresholds [n_labels]. `sae`: the codes an sae
    candidate reads."""
    train_a, train_y, cal_a, cal_y = [], [], [], []
    for i, part in enumerate(parts):
        tr, ca = split_calibration(len(part.targets), calib_share, seed + i)
        acts = part.acts(candidate.layer)
        train_a += [acts[j] for j in tr]
        train_y += [part.targets[j] for j in tr]
        cal_a += [acts[j] for j in ca]
        cal_y += [part.targets[j] for j in ca]
    torch.manual_seed(seed)
    head = candidate.new_head(train_a[0].shape[1], train_a, sae)
    saes = saes_of(candidate, sae)
    fit.fit_token_head(head, train_a, train_y, epochs=epochs, seed=seed, batch_size=64, saes=saes)
    logits = np.concatenate(fit.token_logits(head, cal_a, saes=saes))
    y = np.concatenate(cal_y)
    thresholds = np.full(len(PII_LABELS), 0.5, dtype=np.float32)
    for col in range(len(PII_LABELS)):
        a, c = fit.platt(logits[:, col], y[:, col])
        fit.fold_platt(head, col, a, c)
        if y[:, col].any():
            thresholds[col] = fit.best_f1_threshold(sigmoid(a * logits[:, col] + c), y[:, col])[0]
    return head, thresholds


def score_source(
    head: Head, thresholds: np.ndarray, part: SourceActs, saes: Sequence[SparseAutoencoder] = ()
) -> dict[str, object]:
    """The dev suite's scoring (`devsuite.score_spans`) on a held-out source's train part."""
    from probeguard.training.devsuite import score_spans

    probs = [sigmoid(x) for x in fit.token_logits(head, part.acts(head.config.layer), saes=saes)]
    pred = [[(s.label, s.start, s.end) for s in decode_spans(ex.text, off, p, PII_LABELS, thresholds)]
            for ex, off, p in zip(part.source.train, part.offsets, probs, strict=True)]  # fmt: skip
    return score_spans(part.source, part.source.train, pred, None)


def leave_one_source_out(
    data: dict[str, SourceActs], candidate: PiiCandidate, epochs: int, seed: int, sae: SparseAutoencoder | None = None
) -> dict[str, dict[str, object]]:
    out = {}
    for held in data:
        parts = [d for name, d in data.items() if name != held]
        head, thresholds = fit_head(parts, candidate, epochs, seed, sae=sae)
        out[held] = score_source(head, thresholds, data[held], saes_of(candidate, sae))
        print(json.dumps({"candidate": candidate.key, "held_out": held, **out[held]}), flush=True)
    return out


def worst_source(result: dict[str, dict[str, object]], max_structured: float) -> float:
    """Rank key: the worst held-out entity F1; a candidate over the PII-free budget ranks below every other."""
    f1s = [float(r["f1"]) for r in result.values() if "f1" in r]
    over = any(float(r["structured_per_1000"]) > max_structured for r in result.values() if "f1" not in r)
    return min(f1s) - (1.0 if over else 0.0)


def select(
    data: dict[str, SourceActs],
    layers: Sequence[int],
    lookaheads: Sequence[int],
    epochs: int,
    seed: int,
    max_structured: float,
    kinds: Sequence[str] = ("linear",),
    hidden: int = 64,
    tolerance: float = 0.0,
    sae: SparseAutoencoder | None = None,
) -> tuple[PiiCandidate, dict]:
    """The cheapest (layer, lookahead, head kind) tied with the best on the worst source, then on the mean
    (`cheapest_near_best`), and every candidate's per-source results. Cheapest: the shallowest layer (each block the
    host runs costs ~15 % of its speed), then a linear head before an mlp one, then the better worst-source score. A
    single candidate is returned as chosen without fitting anything."""
    candidates = [PiiCandidate(k, w, kind, hidden) for k in layers for w in lookaheads for kind in kinds
                  if kind != "sae" or (sae is not None and sae.config.layer == k)]  # fmt: skip
    if not candidates:
        raise ConfigError(f"no PII candidate: heads {list(kinds)} at layers {list(layers)} (an sae head needs the "
                          "run's SAE on its layer)")  # fmt: skip
    results: dict[str, dict] = {}
    chosen = candidates[0]
    if len(candidates) > 1:
        for candidate in candidates:
            res = leave_one_source_out(data, candidate, epochs, seed, sae)
            results[candidate.key] = {**candidate.as_dict(), "by_source": res,
                                      "worst": round(worst_source(res, max_structured), 4),
                                      "mean": round(mean_source(res), 4)}  # fmt: skip
        chosen = cheapest_near_best(candidates, {c.key: results[c.key]["worst"] for c in candidates}, tolerance,
                                    {c.key: results[c.key]["mean"] for c in candidates})  # fmt: skip
    print(json.dumps({"pii_chosen": chosen.as_dict()}), flush=True)
    return chosen, {"candidates": results, "chosen": chosen.as_dict(), "tolerance": tolerance}


def cheapest_near_best(
    candidates: Sequence[PiiCandidate], worst: dict[str, float], tolerance: float, mean: dict[str, float] | None = None
) -> PiiCandidate:
    """The worst held-out source decides; candidates within `tolerance` of the best worst-source score are tied on
    it, and among them those within `tolerance` of the best mean over sources (when `mean` is given) are tied on
    both. Of the tied, the shallowest; then the cheaper head (HEAD_COST); then the better worst-source score."""
    best = max(worst[c.key] for c in candidates)
    near = [c for c in candidates if worst[c.key] >= best - tolerance]
    if mean is not None:
        best_mean = max(mean[c.key] for c in near)
        near = [c for c in near if mean[c.key] >= best_mean - tolerance]
    return min(near, key=lambda c: (c.layer, HEAD_COST[c.kind], -worst[c.key]))


def mean_source(result: dict[str, dict[str, object]]) -> float:
    """Mean held-out entity F1 over the sources that have one."""
    f1s = [float(r["f1"]) for r in result.values() if "f1" in r]
    return sum(f1s) / max(len(f1s), 1)


def main(argv: Sequence[str] | None = None) -> int:
    from probeguard.training.pii_harvest import build_pii_sources, harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, nargs="+", default=[6, 8, 10])
    p.add_argument("--lookaheads", type=int, nargs="+", default=[4])
    p.add_argument("--heads", nargs="+", default=list(PII_HEAD_KINDS), choices=PII_HEAD_KINDS)
    p.add_argument("--hidden", type=int, default=64, help="mlp hidden units")
    p.add_argument("--tolerance", type=float, default=0.03, help="F1 differences below this are ties (noise)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-structured", type=float, default=5.0, help="structured spans per 1,000 PII-free texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sae", type=Path, help="an SAE folder (SAELens layout) whose codes the sae candidate reads")
    p.add_argument("--config", type=Path, help="take the PII sources as this training config sizes them (the same "
                                               "texts as its run, so its cached activations are read)")  # fmt: skip
    p.add_argument("--out", type=Path, help="write the selection as JSON here")
    args = p.parse_args(argv)
    sae = None
    if args.sae:
        from probeguard.detector.sae import read_sae_folder

        sae = read_sae_folder(args.sae, json.loads((args.sae / "cfg.json").read_text())["probeguard"]["name"])
    if args.config:
        from probeguard.training.run_sources import pii_sources_of
        from probeguard.training.train_config import load_config

        sources = pii_sources_of(dataclasses.replace(load_config(args.config), seed=args.seed))
    else:
        sources = build_pii_sources(args.seed)
    data = harvest_sources(sources, harvester(args.layers))
    _, summary = select(data, args.layers, args.lookaheads, args.epochs, args.seed, args.max_structured, args.heads,
                        args.hidden, args.tolerance, sae)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
