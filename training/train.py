"""`probeguard train`: synthetic PII + shared instruction data -> harvested activations -> heads -> bundle.

This first pipeline fits one token head (PII, linear with lookahead) and one sequence head (`unsafe`, pooled linear)
at one layer, calibrates them on data they were not fitted on, and evaluates entity F1 on held-out templates and a
held-out locale. Every number it prints is computed here, on data generated or read in this run.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from detector.bundle import HostRef, save_bundle
from detector.heads import SequenceLinearConfig, SequenceLinearHead, TokenLinearConfig, TokenLinearHead
from detector.host import DEFAULT_HOST_ID, resolve_host
from detector.settings import DetectorSettings
from detector.tokenize import HostTokenizer
from detector.truncate import load_host_config, load_truncated_host, num_host_layers
from training import fit
from training.data import SHARED_UNSAFE, LabelledText, load_instructions, token_targets
from training.evaluate import entity_scores
from training.harvest import harvest
from training.synth import PII_LABELS, SynthExample, generate_examples


def _sample(rows: list[LabelledText], n: int, seed: int) -> list[LabelledText]:
    rng = random.Random(seed)
    return rng.sample(rows, min(n, len(rows)))


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write, e.g. models/probeguard-base/0.1.0")
    p.add_argument("--name", default="probeguard-base")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--host", type=Path, help="host model folder (default: packaged Gemma 3 270M)")
    p.add_argument("--layer", type=int, default=6, help="layer both heads read (residual stream after N blocks)")
    p.add_argument("--lookahead", type=int, default=3, help="following tokens the PII head reads")
    p.add_argument("--n-pii", type=int, default=4000, help="synthetic PII training examples")
    p.add_argument("--n-val", type=int, default=600, help="examples per validation split")
    p.add_argument("--n-benign", type=int, default=3000, help="harmless instructions used as negatives")
    p.add_argument("--unsafe-data", type=Path, default=SHARED_UNSAFE, help="folder with harmful_/harmless_*.json")
    p.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate for category thresholds")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    settings = DetectorSettings.from_env(num_threads=args.threads, host_path=args.host)
    torch.set_num_threads(settings.num_threads)
    torch.manual_seed(args.seed)
    host = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
    config = load_host_config(host.path)
    tokenizer = HostTokenizer.from_folder(host.path)
    truncated = load_truncated_host(host.path, [args.layer], config)
    max_tokens = settings.window_tokens - tokenizer.num_special

    def acts_of(texts: list[str], desc: str) -> tuple[list[np.ndarray], list]:
        h = harvest(truncated, tokenizer, texts, max_tokens, batch_size=16, desc=desc)
        return h.layers[args.layer], h.encoded

    # -- data ---------------------------------------------------------------------------------------------------------
    pii_train = generate_examples(args.n_pii, seed=args.seed, template_split="train")
    pii_calib = generate_examples(args.n_val, seed=args.seed + 1, template_split="train")
    pii_heldout = generate_examples(args.n_val, seed=args.seed + 2, template_split="heldout")
    pii_locale = generate_examples(args.n_val // 2, seed=args.seed + 3, locales=["ja_JP"], template_split="all")
    d = args.unsafe_data
    harmful_train = load_instructions(d / "harmful_train.json", 1)
    harmless_train = load_instructions(d / "harmless_train.json", 0)
    harmful_val = load_instructions(d / "harmful_val.json", 1)
    harmless_val = _sample(load_instructions(d / "harmless_val.json", 0), 2000, args.seed)
    benign = _sample(harmless_train, args.n_benign, args.seed)

    # -- token head (PII) ---------------------------------------------------------------------------------------------
    token_texts = [e.text for e in pii_train] + [b.text for b in benign[: args.n_benign // 2]]
    token_spans = [[(s.label, s.start, s.end) for s in e.spans] for e in pii_train] + [[]] * (args.n_benign // 2)
    acts, encoded = acts_of(token_texts, "harvest pii")
    targets = [token_targets(e.offsets, sp, PII_LABELS) for e, sp in zip(encoded, token_spans, strict=True)]
    pii_head = TokenLinearHead(
        TokenLinearConfig(name="pii", layer=args.layer, labels=PII_LABELS, lookahead=args.lookahead),
        int(config.hidden_size),
    )
    losses = fit.fit_token_head(pii_head, acts, targets, epochs=args.epochs, seed=args.seed)
    calib_acts, calib_enc = acts_of([e.text for e in pii_calib], "harvest calib")
    calib_y = np.concatenate(
        [token_targets(e.offsets, [(s.label, s.start, s.end) for s in ex.spans], PII_LABELS)
         for e, ex in zip(calib_enc, pii_calib, strict=True)]
    )  # fmt: skip
    calib_logits = np.concatenate(fit.token_logits(pii_head, calib_acts))
    pii_thresholds: dict[str, float] = {}
    token_f1: dict[str, float] = {}
    for col, label in enumerate(PII_LABELS):
        a, c = fit.platt(calib_logits[:, col], calib_y[:, col])
        fit.fold_platt(pii_head, col, a, c)
        probs = 1 / (1 + np.exp(-(a * calib_logits[:, col] + c)))
        pii_thresholds[label], token_f1[label] = fit.best_f1_threshold(probs, calib_y[:, col])

    # -- sequence head (unsafe) ---------------------------------------------------------------------------------------
    seq_train = harmful_train + benign + [LabelledText(e.text, 0) for e in pii_train[:1000]]
    seq_acts, _ = acts_of([r.text for r in seq_train], "harvest unsafe")
    unsafe_head = SequenceLinearHead(
        SequenceLinearConfig(name="unsafe", layer=args.layer, labels=("unsafe",), pooling="mean"),
        int(config.hidden_size),
    )
    feats = fit.pooled_features(seq_acts, "mean", 16)
    fit.fit_sequence_head(unsafe_head, feats, np.array([[r.label] for r in seq_train], dtype=np.float32))
    val_rows = harmful_val + harmless_val
    val_acts, _ = acts_of([r.text for r in val_rows], "harvest unsafe val")
    with torch.no_grad():
        val_logits = (fit.pooled_features(val_acts, "mean", 16) @ unsafe_head.weight.T + unsafe_head.bias)[:, 0]
    val_y = np.array([r.label for r in val_rows], dtype=np.float32)
    a, c = fit.platt(val_logits.numpy(), val_y)
    fit.fold_platt(unsafe_head, 0, a, c)
    val_probs = 1 / (1 + np.exp(-(a * val_logits.numpy() + c)))
    unsafe_threshold = fit.threshold_at_fpr(val_probs[val_y == 0], args.fpr)
    unsafe_recall = float((val_probs[val_y == 1] >= unsafe_threshold).mean())

    # -- bundle + evaluation through the served path ------------------------------------------------------------------
    ref = HostRef(host.id, host.sha256, num_host_layers(config), int(config.hidden_size), str(config.model_type))
    heads = [(pii_head, pii_thresholds), (unsafe_head, {"unsafe": unsafe_threshold})]
    training_data = {
        "pii_synthetic": {"train": len(pii_train), "seed": args.seed, "template_split": "train",
                          "locales": "DEFAULT_LOCALES"},
        "benign_negatives": {"source": "shared/data/unsafe/harmless_train.json (Alpaca, CC BY-NC 4.0)",
                             "n": len(benign)},
        "unsafe": {"harmful_train": len(harmful_train), "calibration": "harmful_val + 2000 of harmless_val"},
    }  # fmt: skip
    save_bundle(args.out, name=args.name, version=args.version, host=ref, heads=heads, training_data=training_data)
    from detector.pipeline import Detector

    detector = Detector.load(args.out, settings)
    metrics = {
        "layer": args.layer,
        "token_head_train_loss": [round(x, 4) for x in losses],
        "token_f1_calibration": {k: round(v, 4) for k, v in token_f1.items()},
        "entity_heldout_templates": _entity_eval(detector, pii_heldout),
        "entity_heldout_locale_ja_JP": _entity_eval(detector, pii_locale),
        "unsafe": {"threshold": round(unsafe_threshold, 4), "target_fpr": args.fpr,
                   "recall_at_threshold_on_harmful_val": round(unsafe_recall, 4),
                   "note": "threshold and Platt fitted on the same validation rows; recall is optimistic"},
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": settings.num_threads,
    }  # fmt: skip
    save_bundle(
        args.out, name=args.name, version=args.version, host=ref, heads=heads, metrics=metrics,
        training_data=training_data,
    )  # fmt: skip
    print(json.dumps(metrics, indent=2))
    return 0


def _entity_eval(detector: object, examples: list[SynthExample]) -> dict[str, object]:
    results = detector.detect([e.text for e in examples])  # type: ignore[attr-defined]
    gold = [[(s.label, s.start, s.end) for s in e.spans] for e in examples]
    pred = [[(s.label, s.start, s.end) for s in r.spans] for r in results]
    return entity_scores(gold, pred)
