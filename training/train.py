"""`probeguard train --config training/configs/default.toml`: data -> layer sweep -> activations -> heads ->
calibration -> bundle -> evaluation report. Every number in the report is computed in this run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from detector.bundle import HostRef, save_bundle
from detector.heads import Head, TokenLinearConfig, TokenLinearHead
from detector.host import DEFAULT_HOST_ID, resolve_host
from detector.pipeline import sigmoid
from detector.settings import DetectorSettings
from detector.tokenize import HostTokenizer
from detector.truncate import load_host_config, load_truncated_host, num_host_layers
from training import fit
from training.activations import harvest_to_store
from training.categories import FittedCategory, fit_linear_category, fit_sae_category
from training.config import TrainConfig, load_config
from training.data import SpanExample, token_targets
from training.datasets import Datasets, build_datasets
from training.evaluate import entity_scores, span_triples
from training.report import plot_linear_vs_sae, plot_per_label, plot_pr_curves, write_report
from training.sae import load_saelens, train_topk_sae
from training.sweep import SweepResult, category_auroc, choose_layer, plot_sweep, token_macro_f1
from training.synth import PII_LABELS

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.toml"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training TOML (default: the default bundle)")
    p.add_argument("--out", type=Path, help="override [bundle].out")
    p.add_argument("--threads", type=int, help="override threads")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (minutes, poor quality)")


def _quick(config: TrainConfig) -> TrainConfig:
    r = dataclasses.replace
    return r(config, data=r(config.data, n_pii_train=300, n_pii_val=80, n_benign=200, n_injection_synthetic=100),
             sweep=r(config.sweep, layers=config.sweep.layers[:2], n_texts=120, epochs=1), pii=r(config.pii, epochs=2),
             sae=r(config.sae, steps=50, d_sae=256, k=8))  # fmt: skip


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
    host = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
    hcfg = load_host_config(host.path)
    n_layers, d_model = num_host_layers(hcfg), int(hcfg.hidden_size)
    tokenizer = HostTokenizer.from_folder(host.path)
    max_tokens = settings.window_tokens - tokenizer.num_special
    data = build_datasets(config)
    print(json.dumps({"data": data.summary()}), flush=True)

    hosts: dict[tuple[int, ...], object] = {}

    def store(layers: list[int], texts: list[str], desc: str):
        if tuple(layers) not in hosts:  # one truncated host per layer set, loaded once
            hosts[tuple(layers)] = load_truncated_host(host.path, layers, hcfg)
        truncated = hosts[tuple(layers)]
        return harvest_to_store(truncated, host.sha256, tokenizer, texts, settings.cache_dir, max_tokens, desc=desc)

    sweep = _sweep(config, data, [k for k in config.sweep.layers if 0 < k < n_layers], store)
    pii_layer = config.pii.layer or sweep.chosen["pii"]
    cat_layer = config.categories.layer or max(sweep.chosen["unsafe"], sweep.chosen["prompt_injection"])
    layers = sorted({pii_layer, cat_layer})

    # -- PII token head -------------------------------------------------------------------------------------------
    pii_texts = data.pii_train + [SpanExample(b.text, ()) for b in data.benign[: len(data.benign) // 2]]
    st, enc = store(layers, [e.text for e in pii_texts], "harvest pii")
    targets = [token_targets(e.offsets, ex.spans, PII_LABELS)[:n] for e, ex, n in
               zip(enc, pii_texts, st.lengths, strict=True)]  # fmt: skip
    pii_head = TokenLinearHead(TokenLinearConfig(name="pii", layer=pii_layer, labels=PII_LABELS,
                                                 lookahead=config.pii.lookahead), d_model)  # fmt: skip
    losses = fit.fit_token_head(pii_head, st.per_text(pii_layer), targets, epochs=config.pii.epochs, seed=config.seed)
    cst, cenc = store(layers, [e.text for e in data.pii_calib], "harvest calibration")
    cal_y = np.concatenate([token_targets(e.offsets, ex.spans, PII_LABELS)[:n] for e, ex, n in
                            zip(cenc, data.pii_calib, cst.lengths, strict=True)])  # fmt: skip
    cal_logits = np.concatenate(fit.token_logits(pii_head, cst.per_text(pii_layer)))
    pii_thresholds, curves = {}, {}
    for col, label in enumerate(PII_LABELS):
        a, c = fit.platt(cal_logits[:, col], cal_y[:, col])
        fit.fold_platt(pii_head, col, a, c)
        probs = sigmoid(a * cal_logits[:, col] + c)
        pii_thresholds[label] = fit.best_f1_threshold(probs, cal_y[:, col])[0]
        curves[label] = (probs, cal_y[:, col])

    # -- SAE + category heads -------------------------------------------------------------------------------------
    if config.sae.external:
        sae_weights, sae_layer = load_saelens(config.path(config.sae.external))
        if sae_layer != cat_layer:
            raise ValueError(f"external SAE reads layer {sae_layer}, category heads read {cat_layer}")
    else:
        sae_weights = train_topk_sae(st.matrix(cat_layer), config.sae.d_sae, config.sae.k, config.sae.steps,
                                     config.sae.batch_tokens, config.sae.lr, config.seed)  # fmt: skip
    heads: list[tuple[Head, dict[str, float]]] = [(pii_head, pii_thresholds)]
    cat_metrics, comparison, decisions = {}, {}, []
    for name, cat in data.categories.items():
        fitted = _fit_category(config, name, cat_layer, cat, sae_weights, store, layers)
        served = "linear" if fitted["linear"].val["auroc"] >= fitted["sae"].val["auroc"] else "sae"
        decisions.append(f"{name}: serving the {served} head (validation AUROC linear "
                         f"{fitted['linear'].val['auroc']:.4f} vs SAE {fitted['sae'].val['auroc']:.4f}); "
                         "the other is kept in the bundle, inactive")  # fmt: skip
        for kind, f in fitted.items():
            f.head.config = dataclasses.replace(f.head.config, active=kind == served)
            heads.append((f.head, {name: f.threshold}))
        cat_metrics[name] = {k: {"served": k == served, "val": f.val, "shifted": f.shifted, "detail": f.detail}
                             for k, f in fitted.items()}  # fmt: skip
        comparison[name] = {k: {"val_auroc": f.val["auroc"], "val_recall": f.val["recall"]} for k, f in fitted.items()}

    # -- bundle, then evaluation through the served path -------------------------------------------------------------
    ref = HostRef(host.id, host.sha256, n_layers, d_model, str(hcfg.model_type))
    name, version = config.bundle.name, config.bundle.version
    save_bundle(out, name=name, version=version, host=ref, heads=heads, training_data=data.summary())
    from detector.pipeline import Detector

    detector = Detector.load(out, settings)
    metrics = {
        "bundle": f"{name} {version}", "host": host.id, "host_layers": n_layers, "layers": layers,
        "sweep": sweep.to_dict(), "token_head_train_loss": [round(x, 4) for x in losses],
        "pii": {"calibration": _entities(detector, data.pii_calib),
                "heldout_templates": _entities(detector, data.pii_heldout),
                "heldout_locale": _entities(detector, data.pii_locale),
                "heldout_locale_name": config.data.heldout_locale, "thresholds": pii_thresholds},
        "categories": cat_metrics, "sae": sae_weights.stats, "decisions": decisions,
        "train_seconds": round(time.perf_counter() - started, 1), "threads": config.threads,
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}",
    }  # fmt: skip
    save_bundle(out, name=name, version=version, host=ref, heads=heads, metrics=_headline(metrics),
                training_data=data.summary())  # fmt: skip
    plot_sweep(sweep, out / "layer_sweep.png")
    plot_per_label(metrics["pii"]["heldout_templates"]["per_label"], out / "pii_per_label.png",
                   "PII entity P/R/F1, held-out templates")  # fmt: skip
    plot_pr_curves(curves, out / "pii_pr_curves.png")
    plot_linear_vs_sae(comparison, out / "linear_vs_sae.png")
    write_report(out, metrics)
    print(json.dumps(_headline(metrics), indent=2))
    return 0


def _sweep(config: TrainConfig, data: Datasets, layers: list[int], store) -> SweepResult:
    n = config.sweep.n_texts
    train, val = data.pii_train[:n], data.pii_calib[: max(n // 3, 1)]
    st, enc = store(layers, [e.text for e in train + val], "sweep harvest pii")
    ys = [token_targets(e.offsets, ex.spans, PII_LABELS)[:n] for e, ex, n in
          zip(enc, train + val, st.lengths, strict=True)]  # fmt: skip
    result = SweepResult(layers=layers, tolerance=config.sweep.tolerance)
    result.scores["pii"] = [
        token_macro_f1(k, PII_LABELS, (a := st.per_text(k))[: len(train)], ys[: len(train)], a[len(train) :],
                       ys[len(train) :], config.pii.lookahead, config.sweep.epochs, config.seed)
        for k in layers
    ]  # fmt: skip
    result.metric["pii"] = "token macro-F1"
    for name, cat in data.categories.items():
        rows = cat.train[: 4 * n] + cat.val[: 2 * n]
        cst, _ = store(layers, [r.text for r in rows], f"sweep harvest {name}")
        y = np.array([r.label for r in rows])
        cut = min(len(cat.train), 4 * n)
        result.scores[name] = [
            category_auroc(k, (a := cst.per_text(k))[:cut], y[:cut], a[cut:], y[cut:], "mean") for k in layers
        ]
        result.metric[name] = "AUROC"
    result.chosen = {k: choose_layer(layers, s, config.sweep.tolerance) for k, s in result.scores.items()}
    print(json.dumps({"sweep": result.to_dict()}), flush=True)
    return result


def _fit_category(config, name, layer, cat, sae_weights, store, layers) -> dict[str, FittedCategory]:
    tr, _ = store(layers, [r.text for r in cat.train], f"harvest {name}")
    va, _ = store(layers, [r.text for r in cat.val], f"harvest {name} val")
    sh, _ = store(layers, [r.text for r in cat.shifted], f"harvest {name} shifted") if cat.shifted else (None, None)
    ty, vy = np.array([r.label for r in cat.train], np.float32), np.array([r.label for r in cat.val], np.float32)
    sy = np.array([r.label for r in cat.shifted], np.float32)
    sa = sh.per_text(layer) if sh is not None else []
    args = (tr.per_text(layer), ty, va.per_text(layer), vy, sa, sy)
    fpr = config.categories.target_fpr
    return {
        "linear": fit_linear_category(name, layer, *args, config.categories.poolings, fpr),
        "sae": fit_sae_category(name, layer, sae_weights, *args, config.sae.l1, fpr),
    }


def _entities(detector, examples: list[SpanExample]) -> dict[str, object]:
    results = detector.detect([e.text for e in examples])
    return entity_scores([list(e.spans) for e in examples], span_triples(results))


def _headline(metrics: dict) -> dict:
    """The short version stored in the manifest (the full one is metrics.json beside it)."""
    pii = metrics["pii"]
    return {
        "layers": metrics["layers"], "sweep_chosen": metrics["sweep"]["chosen"],
        "pii_entity_f1": {k: pii[k]["micro"]["f1"] for k in ("calibration", "heldout_templates", "heldout_locale")},
        "pii_entity_overlap_f1": {k: pii[k]["micro_overlap"]["f1"]
                                  for k in ("calibration", "heldout_templates", "heldout_locale")},
        "categories": {n: {k: {"auroc": v["val"]["auroc"], "recall": v["val"]["recall"], "fpr": v["val"]["fpr"],
                               "served": v["served"]} for k, v in c.items()} for n, c in metrics["categories"].items()},
        "sae": metrics["sae"], "train_seconds": metrics["train_seconds"], "threads": metrics["threads"],
    }  # fmt: skip
