"""A training run's data: the PII and category sources a config names (built-in sources sized by `[data]`, plus
the user's span, labelled and benign files), with their train and dev parts. Shared by `probeguard train` and the
commands that rebuild a run's artifacts (training.explain_stage)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from probeguard.detector import CATEGORIES
from probeguard.training.category_sources import CategorySource, category_sources
from probeguard.training.data import LabelledText, read_labelled_jsonl, read_span_jsonl
from probeguard.training.pii_harvest import build_pii_sources
from probeguard.training.pii_sources import SpanSource, subsample
from probeguard.training.synth import PII_LABELS
from probeguard.training.train_config import TrainConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.toml"


def _first_sources(sources: list[CategorySource], keep: int) -> list[CategorySource]:
    """The first `keep` positive and look-alike sources of each category (in source order); every negative source."""
    seen: Counter[tuple[str, str]] = Counter()
    out = []
    for s in sources:
        seen[s.category, s.role] += 1
        if s.role == "negative" or seen[s.category, s.role] <= keep:
            out.append(s)
    return out


def _user_span_sources(config: TrainConfig) -> list[SpanSource]:
    out = []
    for path in config.data.span_files:
        rows = read_span_jsonl(config.path(path), PII_LABELS)
        out.append(SpanSource(f"user:{Path(path).stem}", "user", PII_LABELS, rows, []))
    return out


def _user_category_sources(config: TrainConfig) -> list[CategorySource]:
    out = []
    for path in config.data.labelled_files:
        for category, rows in read_labelled_jsonl(config.path(path), list(CATEGORIES)).items():
            for role, label in (("positive", 1), ("negative", 0)):
                picked = [r for r in rows if r.label == label]
                if picked:
                    out.append(CategorySource(f"user:{Path(path).stem}:{role}", category, role, picked, []))
    return out


def _benign(config: TrainConfig) -> list[str] | None:
    if not config.data.benign_files:
        return None
    rows: list[LabelledText] = []
    for path in config.data.benign_files:
        rows += read_labelled_jsonl(config.path(path), list(CATEGORIES))["unsafe"]
    return [r.text for r in rows if r.label == 0]


def pii_sources_of(config: TrainConfig) -> list[SpanSource]:
    """The run's PII sources (train and dev parts), as `config` sizes them."""
    d = config.data
    sizes = {"wikigold": d.n_wikigold, "btc": d.n_btc, "wnut17": d.n_wnut17, "business": d.n_business,
             "synthetic": d.n_synthetic, "code": d.n_code, "records": d.n_records}  # fmt: skip
    shared = config.path(d.shared_dir)
    sources = build_pii_sources(config.seed, shared / "pii_real", sizes) + _user_span_sources(config)
    if d.max_dev_texts:
        sources = [dataclasses.replace(s, dev=subsample(s.dev, d.max_dev_texts, config.seed)) for s in sources]
    return sources


def category_sources_of(config: TrainConfig) -> list[CategorySource]:
    """The run's category sources (train and dev parts), as `config` sizes them."""
    d = config.data
    sources = category_sources(config.seed, d.n_alpaca, config.path(d.shared_dir), _benign(config))
    sources += _user_category_sources(config)
    if d.max_dev_texts or d.max_category_train:
        sources = [dataclasses.replace(s, train=s.train[: d.max_category_train or None],
                                       dev=s.dev[: d.max_dev_texts or None]) for s in sources]  # fmt: skip
    if d.max_category_sources:
        sources = _first_sources(sources, d.max_category_sources)
    return sources
