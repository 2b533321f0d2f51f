"""Assemble every dataset a training run needs from the config: synthetic PII splits, benign negatives, category
train / validation / shifted splits. Deterministic for a given seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from detector import CATEGORIES
from training.config import TrainConfig
from training.contrastive import (
    bastion_rows,
    contrastive_unsafe_negatives,
    synthetic_injections,
)
from training.data import LabelledText, SpanExample, load_instructions, read_labelled_jsonl, read_span_jsonl
from training.synth import DEFAULT_LOCALES, PII_LABELS, SynthExample, generate_examples


@dataclass
class CategoryData:
    train: list[LabelledText]
    val: list[LabelledText]  # calibration + threshold (negatives) + model selection
    shifted: list[LabelledText] = field(default_factory=list)  # a different source than train, for reporting


@dataclass
class Datasets:
    pii_train: list[SpanExample]
    pii_calib: list[SpanExample]  # train templates, unseen seed: calibration and thresholds
    pii_heldout: list[SpanExample]  # templates never used in training
    pii_locale: list[SpanExample]  # a locale never used in training
    benign: list[LabelledText]  # ordinary texts with no PII and no category
    categories: dict[str, CategoryData]

    def summary(self) -> dict[str, object]:
        return {
            "pii": {"train": len(self.pii_train), "calibration": len(self.pii_calib),
                    "heldout_templates": len(self.pii_heldout), "heldout_locale": len(self.pii_locale)},
            "benign_negatives": len(self.benign),
            "categories": {c: {"train": len(d.train), "train_positive": sum(r.label for r in d.train),
                               "val": len(d.val), "shifted": len(d.shifted)} for c, d in self.categories.items()},
        }  # fmt: skip


def _spans(examples: list[SynthExample]) -> list[SpanExample]:
    return [SpanExample(e.text, tuple((s.label, s.start, s.end) for s in e.spans), e.template_id) for e in examples]


def build_datasets(config: TrainConfig) -> Datasets:
    d, seed = config.data, config.seed
    rng = random.Random(seed)
    locales = [loc for loc in DEFAULT_LOCALES if loc != d.heldout_locale]
    synth = {"negative_fraction": d.negative_fraction, "locales": locales}
    pii_train = _spans(generate_examples(d.n_pii_train, seed=seed, template_split="train", **synth))
    for path in d.span_files:
        pii_train += read_span_jsonl(config.path(path), PII_LABELS)
    pii_calib = _spans(generate_examples(d.n_pii_val, seed=seed + 1, template_split="train", **synth))
    pii_heldout = _spans(generate_examples(d.n_pii_val, seed=seed + 2, template_split="heldout", **synth))
    pii_locale = _spans(generate_examples(d.n_pii_val, seed=seed + 3, locales=[d.heldout_locale],
                                          template_split="all", negative_fraction=d.negative_fraction))  # fmt: skip

    unsafe_dir = config.path(d.unsafe_dir)
    harmless_train = load_instructions(unsafe_dir / "harmless_train.json", 0)
    harmless_val = load_instructions(unsafe_dir / "harmless_val.json", 0)
    if d.benign_files:  # your own benign traffic replaces the Alpaca-derived instructions
        benign_pool = [r for path in d.benign_files for r in read_labelled_jsonl(config.path(path), CATEGORIES)
                       ["unsafe"] if r.label == 0]  # fmt: skip
        rng.shuffle(benign_pool)
        cut = max(len(benign_pool) * 4 // 5, 1)
        benign, benign_val = benign_pool[:cut][: d.n_benign], benign_pool[cut:]
    else:
        benign = rng.sample(harmless_train, min(d.n_benign, len(harmless_train)))
        benign_val = rng.sample(harmless_val, min(2000, len(harmless_val)))
    pii_as_safe = [LabelledText(e.text, 0, "synthetic_pii") for e in pii_train[:1000]]
    contrastive = contrastive_unsafe_negatives()
    unsafe = CategoryData(
        train=load_instructions(unsafe_dir / "harmful_train.json", 1) + benign + pii_as_safe + contrastive[::2],
        val=load_instructions(unsafe_dir / "harmful_val.json", 1) + benign_val + contrastive[1::2],
        shifted=contrastive[1::2],
    )
    injection = CategoryData(
        train=synthetic_injections(d.n_injection_synthetic, seed) + bastion_rows("train") + benign[:1000]
        + pii_as_safe[:300],
        val=bastion_rows("val") + synthetic_injections(200, seed + 1) + benign_val[:500],
        shifted=bastion_rows("val"),
    )  # fmt: skip
    categories = {"unsafe": unsafe, "prompt_injection": injection}
    for path in d.labelled_files:
        for category, rows in read_labelled_jsonl(config.path(path), list(categories)).items():
            categories[category].train.extend(rows)
    return Datasets(pii_train, pii_calib, pii_heldout, pii_locale, benign, categories)
