"""The blind relabelling of the unsafe dev parts: the file parses, keys match texts, shares per source."""

from __future__ import annotations

import json

import pytest

from experiments.blind_labels.run import agreement, load_blind_labels, text_key
from probeguard.training.category_sources import CategorySource, category_sources
from probeguard.training.data import LabelledText


def _source(name: str, role: str, texts: list[str]) -> CategorySource:
    return CategorySource(name, "unsafe", role, [], [LabelledText(t, int(role == "positive"), name) for t in texts])


def test_agreement_counts_shares_per_source_and_unlabelled_texts():
    blind = {text_key("a"): "unsafe", text_key("b"): "borderline", text_key("c"): "safe", text_key("d"): "safe"}
    rows = agreement([_source("harm", "positive", ["a", "b", "zzz"]), _source("twins", "lookalike", ["c", "d"]),
                      _source("docs", "negative", ["a"])], blind)  # fmt: skip
    assert rows == [
        {"source": "harm", "role": "positive", "n": 2, "unlabelled": 1, "unsafe": 0.5, "borderline": 0.5, "safe": 0.0},
        {"source": "twins", "role": "lookalike", "n": 2, "unlabelled": 0, "unsafe": 0.0, "borderline": 0.0,
         "safe": 1.0},
    ]  # fmt: skip


def test_a_label_outside_the_rules_is_refused(tmp_path):
    bad = tmp_path / "labels.jsonl"
    bad.write_text(json.dumps({"sha256_16": "00", "source": "x", "label": "harmful"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"labels\.jsonl:1: label must be one of"):
        load_blind_labels(bad)


def test_shipped_labels_cover_every_unsafe_lookalike_and_positive_source():
    rows = agreement([s for s in category_sources(0) if s.category == "unsafe"], load_blind_labels())
    assert {r["role"] for r in rows} == {"positive", "lookalike"}
    assert all(r["n"] > 0 for r in rows)
