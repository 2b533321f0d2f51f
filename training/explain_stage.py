"""The training run's explain stage: feature labels and influence layers (training.explain_build) for the bundle just
saved, and their figures on dev texts the bundle never saw, through the served graph:

- faithfulness of the SAE split of each category score (training.explain_quality: residual, SAE error share,
  deletion with the attention recomputed, sufficiency);
- the influence layer against the served score (mean |p_refit - p_served|, and the share of flagged texts it also
  flags at 0.5), and the leave-top-k-out check of its citations.

`probeguard train` runs it when the bundle has an SAE; this command adds it to a bundle trained before it existed:

    python -m probeguard.training.explain_stage --bundle DIR [--config TOML] [--threads 2]
        [--out NEW_DIR --version V] [--sae-from BUNDLE]   # a new version with the same heads
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.explain_store import ExplainArtifacts
from probeguard.detector.explanation import pooled_values
from probeguard.detector.pipeline import Detector
from probeguard.detector.sae import SparseAutoencoder
from probeguard.training.category_sources import CategorySource
from probeguard.training.explain_build import (
    feature_labels,
    influence_check,
    influence_layer,
    redact_with_mark,
)
from probeguard.training.explain_quality import summarise, text_faithfulness
from probeguard.training.pii_sources import SpanSource

BATCH = 256  # texts per redaction call


def _spans_of(detector: Detector) -> Callable[[list[str]], list[list[tuple[int, int, str]]]]:
    def spans_of(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        """Every text's PII spans; a blank text (a context that is only a newline) has none."""
        scored = [i for i, t in enumerate(texts) if t.strip()]
        out: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        for at in range(0, len(scored), BATCH):
            chunk = scored[at : at + BATCH]
            for i, d in zip(chunk, detector.detect([texts[i] for i in chunk]), strict=True):
                out[i] = [(s.start, s.end, s.label) for s in d.spans]
        return out

    return spans_of


def dev_checks(
    detector: Detector,
    sae: SparseAutoencoder,
    art: ExplainArtifacts,
    sources: Sequence[CategorySource],
    per_source: int,
    seed: int,
) -> dict[str, dict]:
    """Per category, on flagged dev texts of its positive and look-alike sources (at most `per_source` each)."""
    explainer = detector.explainer
    rng = np.random.default_rng(seed)
    out: dict[str, dict] = {}
    for category, (head, _) in explainer.category_heads.items():
        texts: list[str] = []
        for s in sources:
            if s.category == category and s.role in ("positive", "lookalike") and s.dev:
                pool = [r.text for r in s.dev[: 2 * per_source]]
                answers = detector.detect(pool)
                texts += [t for t, d in zip(pool, answers, strict=True) if d.categories[category].flagged][:per_source]
        faithful, tests, gaps = [], [], []
        layer = art.influence.get(category)
        for windows in detector.window_activations(detector.encode(texts)):
            w, parts = explainer.winning_window(category, windows)
            acts = torch.from_numpy(w.acts)
            row = text_faithfulness(head, sae, acts, torch.ones(len(acts), dtype=torch.bool), rng)
            if row is not None:
                faithful.append(row)
            if layer is not None:
                x = np.append(pooled_values(head, acts, parts.attention), 1.0)
                tests.append(x)
                gaps.append(abs(1 / (1 + np.exp(-layer.logit(x))) - 1 / (1 + np.exp(-parts.logit))))
        figures: dict[str, object] = {"flagged_dev_texts": len(texts),
                                      "faithfulness": summarise(faithful) if faithful else {"texts": 0}}  # fmt: skip
        if layer is not None and tests:
            refit_flags = [layer.logit(x) >= 0 for x in tests]
            figures["influence"] = {
                "rows": len(layer.rows), "mean_abs_score_gap": round(float(np.mean(gaps)), 4),
                "refit_flags_share": round(float(np.mean(refit_flags)), 4),
                "check": influence_check(layer, tests[:40], seed),
            }  # fmt: skip
        out[category] = figures
    return out


def build_explain(
    detector: Detector,
    sae: SparseAutoencoder,
    pii: Sequence[SpanSource],
    categories: Sequence[CategorySource],
    harvest: Callable,
    texts_per_source: int,
    seed: int,
    per_source: int = 15,
) -> tuple[ExplainArtifacts, dict[str, object]]:
    """The artifacts for `detector`'s bundle (its SAE, its heads; redaction by its own PII spans) and their report."""
    started = time.perf_counter()
    spans_of = _spans_of(detector)

    def redact(texts: list[str]) -> list[str]:
        return [redact_with_mark(t, s, (0, 0))[0] for t, s in zip(texts, spans_of(texts), strict=True)]

    labels, refs, share, label_report = feature_labels(sae, pii, categories, harvest, detector.tokenizer.encode,
                                                       spans_of, texts_per_source, seed)  # fmt: skip
    influence = {c: influence_layer(c, head, categories, harvest, redact)
                 for c, (head, _) in detector.explainer.category_heads.items()}  # fmt: skip
    art = ExplainArtifacts(sae.config.name, labels, refs, share, influence)
    built = round(time.perf_counter() - started, 1)
    report = {"labels": label_report, "seconds": built,
              "dev": dev_checks(detector, sae, art, categories, per_source, seed)}  # fmt: skip
    return art, report


def main(argv: list[str] | None = None) -> int:
    from probeguard.detector.bundle import load_bundle
    from probeguard.detector.settings import DetectorSettings
    from probeguard.training.bundle_rewrite import rewrite_bundle
    from probeguard.training.pii_harvest import harvester
    from probeguard.training.report import EXPLAIN_ADDS
    from probeguard.training.run_sources import DEFAULT_CONFIG, category_sources_of, pii_sources_of
    from probeguard.training.sae_fit import bundle_sae
    from probeguard.training.train_config import load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="the bundle to explain (its heads are kept as they are)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the training TOML the bundle was built with")
    p.add_argument("--out", type=Path, help="write the explaining bundle here (default: rewrite --bundle in place)")
    p.add_argument("--version", help="the written bundle's version (default: --bundle's)")
    p.add_argument(
        "--sae-from",
        type=Path,
        help="take the SAE (and its report) from this bundle, trained with the "
        "same config (its SAE is the same fit); default: the bundle's own, else fit one ([sae] recipe)",
    )
    p.add_argument("--per-source", type=int, default=15, help="flagged dev texts per source for the figures")
    p.add_argument("--threads", type=int, help="override the config's threads")
    args = p.parse_args(argv)
    config = load_config(args.config)
    if args.threads:
        config = dataclasses.replace(config, threads=args.threads)
    settings = DetectorSettings.from_env(num_threads=config.threads)
    torch.set_num_threads(config.threads)
    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    out, version = args.out or args.bundle, args.version or m.version
    metrics_path = args.bundle / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    pii, categories = pii_sources_of(config), category_sources_of(config)
    harvest = harvester(list(m.layers), settings, config.variant)
    saes, sae_report = list(bundle.saes.values()), metrics.get("sae")
    if args.sae_from is not None:
        donor = load_bundle(args.sae_from)
        saes = list(donor.saes.values())
        sae_report = json.loads((args.sae_from / "metrics.json").read_text()).get("sae")
    elif not saes:
        layer = max(k for e in m.active_heads if e.config.labels[0] in {c.category for c in categories}
                    for k in e.config.layers_read)  # fmt: skip
        sae, sae_report = bundle_sae(config.sae, pii, categories, harvest, layer, config.seed)
        saes = [sae]
    # the SAE in place first: the detector that redacts and measures is the written bundle
    rewrite_bundle(args.bundle, out, version, saes=saes, explain=None)
    detector = Detector.load(out, settings)
    art, report = build_explain(detector, detector.explainer.sae, pii, categories, harvest,
                                config.sae.texts_per_source, config.seed, args.per_source)  # fmt: skip
    # from the source again (in place: the same heads): with the SAE, the artifacts, and the report when it has one
    rewrite_bundle(args.bundle, out, version, saes=saes, explain=art,
                   metrics_update={"sae": sae_report, "explain": report}, adds=EXPLAIN_ADDS)  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
