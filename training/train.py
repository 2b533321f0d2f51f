"""`probeguard train --config training/configs/default.toml`: sources -> activations -> leave-one-source-out selection
-> heads fitted on every source's train part -> calibration and thresholds -> bundle -> dev suite -> report.

Every choice (PII layer, lookahead and head type; each category's layer and pooling) is made on sources left out of
the fit and ranked by the worst source. Thresholds come from the train parts (PII: a calibration share; categories:
out-of-fold scores). The dev parts are touched only by the final dev suite, through the saved bundle (the served
path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from probeguard.detector import CATEGORIES
from probeguard.detector.bundle import HostRef, save_bundle
from probeguard.detector.errors import ConfigError
from probeguard.detector.export import activations_of
from probeguard.detector.heads import Head
from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.settings import DetectorSettings
from probeguard.detector.truncate import load_host_config, num_host_layers
from probeguard.training import category_select, pii_select
from probeguard.training.attention_select import fit_attention_category
from probeguard.training.category_select import fit_category
from probeguard.training.devsuite import run_categories, run_pii
from probeguard.training.pii_harvest import harvester
from probeguard.training.pii_select import fit_head, harvest_sources
from probeguard.training.report import write_report
from probeguard.training.run_sources import DEFAULT_CONFIG, category_sources_of, pii_sources_of
from probeguard.training.sae_fit import bundle_sae
from probeguard.training.sae_select import fit_sae_category, is_sae_candidate
from probeguard.training.synth import PII_LABELS
from probeguard.training.train_config import TrainConfig, load_config
from probeguard.training.window_select import fit_window_category


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training TOML (default: the default bundle)")
    p.add_argument("--out", type=Path, help="override [bundle].out")
    p.add_argument("--threads", type=int, help="override threads")
    p.add_argument("--quick", action="store_true", help="tiny sizes, first candidate only (minutes, poor quality)")
    p.add_argument("--no-peer", action="store_true", help="report without Presidio beside (it is a dev extra)")


def _quick(config: TrainConfig) -> TrainConfig:
    r = dataclasses.replace
    return r(config, data=r(config.data, n_wikigold=60, n_btc=60, n_wnut17=60, n_business=60, n_synthetic=60,
                            n_code=20, n_records=20, n_alpaca=150, max_dev_texts=20, max_category_train=150,
                            max_category_sources=3),
             pii=r(config.pii, layers=config.pii.layers[:1], lookaheads=config.pii.lookaheads[:1],
                   heads=config.pii.heads[:1], epochs=1,
                   select_epochs=1),
             categories=r(config.categories, layers=config.categories.layers[:1], layer_sets=[],
                          poolings=config.categories.poolings[:1], attention_epochs=2),
             sae=r(config.sae, texts_per_source=min(config.sae.texts_per_source, 20),
                   steps=min(config.sae.steps, 100), batch_tokens=min(config.sae.batch_tokens, 256)))  # fmt: skip


def _refit_only(config: TrainConfig) -> TrainConfig:
    """`config` with its PII candidates cut to the fixed `[choices] pii` (lookahead from [pii], which must be one)."""
    if len(config.pii.lookaheads) != 1:
        raise ConfigError(f"choices.pii is fixed, so pii.lookaheads must hold one value, got {config.pii.lookaheads}")
    layer, head = config.choices.pii_layer_and_head()
    r = dataclasses.replace
    return r(config, pii=r(config.pii, layers=[layer], heads=[head]))


def select_category(
    config: TrainConfig,
    category: str,
    sources,
    harvest,
    fixed: tuple[tuple[int, ...], str] | None = None,
    sae: SparseAutoencoder | None = None,
) -> tuple[Head, float, dict]:
    cc = config.categories
    c, recipe = cc.regularization_for(category), cc.attention_recipe(category)
    pooled, layers, pooling, selection = category_select.select(
        category,
        sources,
        harvest,
        [fixed[0]] if fixed else cc.candidate_layers(),
        [fixed[1]] if fixed else cc.poolings_for(category),
        cc.target_fpr,
        cc.max_lookalike_fpr,
        c,
        config.seed,
        cc.lookalike_weight,
        cc.per_kind_threshold,
        cc.tolerance,
        cc.max_negative_fpr,
        recipe,
        held_out=not fixed or config.evaluate_fixed,
        sae=sae,
    )
    if is_sae_candidate(pooling):
        weights = category_select.sample_weights(pooled, cc.lookalike_weight)
        head, threshold, info = fit_sae_category(category, sae, pooling, pooled, cc.target_fpr, c, config.seed,
                                                 weights, cc.per_kind_threshold)  # fmt: skip
    elif pooling == category_select.ATTENTION:
        head, threshold, info = fit_attention_category(category, layers[0], pooled, cc.target_fpr, config.seed,
                                                       cc.per_kind_threshold, recipe)  # fmt: skip
    elif pooling == category_select.WINDOW_MAX:
        head, threshold, info = fit_window_category(category, layers[0], pooled, cc.target_fpr, c,
                                                    config.seed, cc.per_kind_threshold)  # fmt: skip
    else:
        head, threshold, info = fit_category(category, layers, pooling, pooled, cc.target_fpr, c,
                                             config.seed, cc.lookalike_weight, cc.per_kind_threshold)  # fmt: skip
    return head, threshold, {**selection, "threshold": round(threshold, 4), **info}


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = load_config(args.config)
    if args.quick:
        config = _quick(config)
    if args.threads:
        config = dataclasses.replace(config, threads=args.threads)
    out = args.out or config.path(config.bundle.out)
    settings = DetectorSettings.from_env(num_threads=config.threads, host_path=config.path(config.host) if config.host
                                         else None)  # fmt: skip
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    def log(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    host = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
    hcfg = load_host_config(host.path)
    n_layers, d_model = num_host_layers(hcfg), int(hcfg.hidden_size)
    layers = sorted({k for k in config.pii.layers + config.categories.layers if 0 < k < n_layers})
    if not layers:
        raise ConfigError(f"pii.layers / categories.layers: no candidate layer in 1..{n_layers - 1}")
    outside = sorted({k for s in config.categories.layer_sets for k in s} - set(layers))
    if outside:
        raise ConfigError(f"categories.layer_sets: layers {outside} are not candidate layers {layers} of this host")
    config = dataclasses.replace(
        config,
        pii=dataclasses.replace(config.pii, layers=[k for k in config.pii.layers if k in layers]),
        categories=dataclasses.replace(config.categories, layers=[k for k in config.categories.layers if k in layers]),
    )
    harvest = harvester(layers, settings, config.variant)
    fixed: dict[str, tuple[tuple[int, ...], str]] = {}
    if config.choices.fixed_parts():  # after the harvest layers are set, so a refit reuses a selection's activations
        fixed = {c: v for c in CATEGORIES if (v := config.choices.category(c)) is not None}
        pii_layers = {config.choices.pii_layer_and_head()[0]} if config.choices.pii else set()
        missing = sorted({*pii_layers, *(k for ks, _ in fixed.values() for k in ks)} - set(layers))
        if missing:
            raise ConfigError(f"choices: layers {missing} are not among this config's candidate layers {layers}")
        if config.choices.pii:
            config = _refit_only(config)
        log({"choices": dataclasses.asdict(config.choices)})
    pii_sources = pii_sources_of(config)
    pii_summary = {s.name: {"train": len(s.train), "dev": len(s.dev)} for s in pii_sources}
    log({"pii_sources": pii_summary})
    cat_sources = category_sources_of(config)
    # -- SAE ----------------------------------------------------------------------------------------------------------
    # The SAE explanations are written in, on the deepest layer a category head may read (fixed or candidate): fitted
    # before the heads, so its codes are candidates too (PII: an sae token head; categories: sae-max, sae-mean).
    sae, sae_report = None, None
    if config.sae.enabled:
        fixed_layers = [k for ks, _ in fixed.values() for k in ks] if len(fixed) == len(CATEGORIES) else []
        sae_layer = max(fixed_layers or config.categories.layers)
        sae, sae_report = bundle_sae(config.sae, pii_sources, cat_sources, harvest, sae_layer, config.seed)
        log({"sae": sae_report})

    # -- PII token head ---------------------------------------------------------------------------------------------
    pii_data = harvest_sources(pii_sources, harvest)
    pc = config.pii
    pii_choice, pii_selection = pii_select.select(
        pii_data, pc.layers, pc.lookaheads, pc.select_epochs, config.seed, pc.max_structured_per_1000, pc.heads,
        pc.hidden, pc.tolerance, sae,
    )  # fmt: skip
    pii_head, thresholds = fit_head(list(pii_data.values()), pii_choice, config.pii.epochs, config.seed, sae=sae)
    heads: list[tuple[Head, dict[str, float]]] = [(pii_head, dict(zip(PII_LABELS, map(float, thresholds),
                                                                          strict=True)))]  # fmt: skip
    pii_sae = sae if pii_choice.kind == "sae" else None  # stays in the bundle even if the categories move the SAE

    # -- category heads ---------------------------------------------------------------------------------------------
    cat_selection = {}
    for category in CATEGORIES:
        chosen = [s for s in cat_sources if s.category == category]
        head, threshold, cat_selection[category] = select_category(config, category, chosen, harvest,
                                                                   fixed.get(category), sae)  # fmt: skip
        heads.append((head, {category: threshold}))
    read = max(k for h, _ in heads if h.level == "sequence" for k in h.config.layers_read)
    if sae is not None and sae.config.layer != read:  # selection chose a shallower layer: explain that one
        sae, sae_report = bundle_sae(config.sae, pii_sources, cat_sources, harvest, read, config.seed)
        log({"sae": sae_report})
    saes = [sae] if sae is not None else []
    if pii_sae is not None and pii_sae is not sae:  # the categories' refit is on another layer: another name
        saes.append(pii_sae)

    # -- bundle, then the dev suite through the served path ----------------------------------------------------------
    ref = HostRef(host.id, host.sha256, n_layers, d_model, str(hcfg.model_type), activations_of(config.variant))
    summary = {"pii_sources": pii_summary,
               "category_sources": {f"{s.category}/{s.name}": {"role": s.role, "train": len(s.train),
                                                               "dev": len(s.dev)} for s in cat_sources}}  # fmt: skip
    name, version = config.bundle.name, config.bundle.version
    save_bundle(
        out,
        name=name,
        version=version,
        host=ref,
        heads=heads,
        saes=saes,
        training_data=summary,
        sae_dtype=torch.float16,
    )
    from probeguard.detector.pipeline import Detector

    detector = Detector.load(out, settings)
    explain, explain_report = None, None
    if saes:  # feature labels and influence layers, redacted by this bundle's own PII spans; figures on dev texts
        from probeguard.training.explain_stage import build_explain

        explain, explain_report = build_explain(detector, saes[0], pii_sources, cat_sources, harvest,
                                                config.sae.texts_per_source, config.seed)  # fmt: skip
        log({"explain": explain_report})
    trace, trace_report = None, None
    if config.trace.enabled:  # per-layer probes for the layer trace: one full-host pass, pooled activations only
        from probeguard.training.layer_trace import build_layer_probes

        trace, trace_report = build_layer_probes(cat_sources, host.path, host.sha256, detector.tokenizer,
                                                 settings.cache_dir, settings.window_tokens, read,
                                                 config.categories, config.seed)  # fmt: skip
        log({"trace": {k: v for k, v in trace_report.items() if k != "by_category"}})
    peer = not args.no_peer and _presidio_available()
    metrics = {
        "bundle": f"{name} {version}", "host": host.id, "host_layers": n_layers, "variant": config.variant,
        "choices_fixed": config.choices.fixed_parts(),
        "evaluate_fixed": config.evaluate_fixed,
        "layers": sorted({pii_choice.layer, *(k for h, _ in heads for k in h.config.layers_read)}),
        "pii_selection": pii_selection, "category_selection": cat_selection, "sae": sae_report,
        "explain": explain_report, "trace": trace_report,
        "dev": {"pii": run_pii(detector, pii_sources, with_peer=peer),
                "categories": run_categories(detector, cat_sources)},
        "peer": "Presidio + spaCy en_core_web_sm" if peer else "not installed (pip install '.[dev]')",
        "train_seconds": round(time.perf_counter() - started, 1), "threads": config.threads,
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}",
    }  # fmt: skip
    save_bundle(out, name=name, version=version, host=ref, heads=heads, saes=saes, metrics=_headline(metrics),
                training_data=summary, sae_dtype=torch.float16, explain=explain, trace=trace)  # fmt: skip
    write_report(out, metrics)
    log(_headline(metrics))
    return 0


def _presidio_available() -> bool:
    try:
        import presidio_analyzer  # noqa: F401
    except ImportError:
        return False
    return True


def _headline(metrics: dict) -> dict:
    """The short version stored in the manifest (the full one is metrics.json beside it)."""
    pii = metrics["dev"]["pii"]["sources"]
    return {
        "layers": metrics["layers"], "pii_chosen": metrics["pii_selection"]["chosen"],
        "dev_entity_f1": {k: v["probeguard"].get("f1") for k, v in pii.items()},
        "dev_structured_per_1000": {k: v["probeguard"]["structured_per_1000"] for k, v in pii.items()},
        "categories": {c: {"chosen": s["chosen"], "threshold": s["threshold"]}
                       for c, s in metrics["category_selection"].items()},
        "train_seconds": metrics["train_seconds"], "threads": metrics["threads"],
    }  # fmt: skip
