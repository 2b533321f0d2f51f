"""Tests for the synthetic PII training-data generator (training/synth)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probeguard.training.synth import (
    ALL_LOCALES,
    DEFAULT_LOCALES,
    PII_LABELS,
    SynthExample,
    all_templates,
    generate_examples,
    templates_for,
    to_jsonl_row,
)
from probeguard.training.synth.context import SlotContext
from probeguard.training.synth.locales import LOCALE_LANGUAGE, get_faker
from probeguard.training.synth.render import Style, render
from probeguard.training.synth.wordlists import PLACEHOLDER_EMAILS, PUBLIC_FIGURES

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_examples() -> list[SynthExample]:
    return generate_examples(2000, seed=0)


@pytest.fixture(scope="module")
def heldout_examples() -> list[SynthExample]:
    return generate_examples(1000, seed=0, template_split="heldout", locales=ALL_LOCALES)


def _check_spans(ex: SynthExample) -> None:
    prev_end = 0
    for span in ex.spans:
        assert span.label in PII_LABELS, span
        assert 0 <= span.start < span.end <= len(ex.text), (span, ex.text)
        assert span.start >= prev_end, f"overlapping/unsorted spans in {ex}"
        value = ex.text[span.start : span.end]
        assert value, span
        assert value == value.strip(), (value, ex.template_id)
        prev_end = span.end


def _luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _values(examples: list[SynthExample], label: str) -> list[str]:
    return [ex.text[s.start : s.end] for ex in examples for s in ex.spans if s.label == label]


def test_same_seed_same_output_and_different_seed_differs() -> None:
    a = generate_examples(300, seed=7)
    b = generate_examples(300, seed=7)
    c = generate_examples(300, seed=8)
    assert a == b
    assert [e.text for e in a] != [e.text for e in c]


@pytest.mark.slow
def test_deterministic_across_processes() -> None:
    code = (
        "import hashlib, json\n"
        "from probeguard.training.synth import generate_examples, to_jsonl_row, ALL_LOCALES\n"
        "rows = [to_jsonl_row(e) for e in generate_examples(200, seed=3, locales=ALL_LOCALES)]\n"
        "print(hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_spans_valid(train_examples: list[SynthExample], heldout_examples: list[SynthExample]) -> None:
    for ex in train_examples + heldout_examples:
        _check_spans(ex)
        assert ex.kind in ("pii", "negative")
        assert ex.locale in ALL_LOCALES
        if ex.kind == "pii":
            assert ex.spans, ex.template_id


def test_every_label_appears(train_examples: list[SynthExample], heldout_examples: list[SynthExample]) -> None:
    assert {s.label for ex in train_examples for s in ex.spans} == set(PII_LABELS)
    assert {s.label for ex in heldout_examples for s in ex.spans} == set(PII_LABELS)


def test_default_locales(train_examples: list[SynthExample]) -> None:
    assert len(ALL_LOCALES) >= 8
    assert "ja_JP" in ALL_LOCALES and "ja_JP" not in DEFAULT_LOCALES
    assert {ex.locale for ex in train_examples} == set(DEFAULT_LOCALES)


def test_heldout_templates_disjoint(train_examples: list[SynthExample], heldout_examples: list[SynthExample]) -> None:
    train_ids = {t.template_id for t in templates_for("train")}
    heldout_ids = {t.template_id for t in templates_for("heldout")}
    assert train_ids.isdisjoint(heldout_ids)
    assert train_ids | heldout_ids == {t.template_id for t in all_templates()}
    seen_train = {ex.template_id for ex in train_examples}
    seen_heldout = {ex.template_id for ex in heldout_examples}
    assert seen_train <= train_ids
    assert seen_heldout <= heldout_ids
    assert seen_train.isdisjoint(seen_heldout)


def test_template_counts() -> None:
    pii_templates = [t for t in all_templates() if t.kind == "pii"]
    assert len(pii_templates) >= 60
    heldout_share = sum(t.heldout for t in all_templates()) / len(all_templates())
    assert 0.1 <= heldout_share <= 0.3
    assert {t.lang for t in pii_templates} >= {"en", "de", "fr", "es", "it", "nl", "ja"}


@pytest.mark.parametrize("fraction", [0.0, 0.35, 0.6, 1.0])
def test_negative_fraction(fraction: float) -> None:
    examples = generate_examples(400, seed=1, negative_fraction=fraction)
    negatives = [ex for ex in examples if ex.kind == "negative"]
    assert abs(len(negatives) / len(examples) - fraction) < 0.01
    kinds = {t.template_id: t.kind for t in all_templates()}
    assert all(kinds[ex.template_id] == ex.kind for ex in examples)


def test_negatives_mostly_unlabelled(train_examples: list[SynthExample]) -> None:
    negatives = [ex for ex in train_examples if ex.kind == "negative"]
    assert sum(1 for ex in negatives if not ex.spans) / len(negatives) > 0.8
    labelled = {ex.text[s.start : s.end] for ex in train_examples for s in ex.spans}
    assert labelled.isdisjoint(PLACEHOLDER_EMAILS)
    assert labelled.isdisjoint(PUBLIC_FIGURES)


def test_ja_jp_generation() -> None:
    examples = generate_examples(300, seed=5, locales=["ja_JP"], template_split="all")
    assert {ex.locale for ex in examples} == {"ja_JP"}
    for ex in examples:
        _check_spans(ex)
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    assert any(japanese.search(v) for v in _values(examples, "PERSON"))
    assert any(ex.template_id.startswith("ja_") for ex in examples)


def test_credit_cards_luhn_valid(train_examples: list[SynthExample]) -> None:
    cards = _values(train_examples, "CREDIT_CARD")
    assert len(cards) > 20
    for card in cards:
        digits = re.sub(r"[ -]", "", card)
        assert digits.isdigit() and 12 <= len(digits) <= 19, card
        assert _luhn_ok(digits), card
    assert any(" " in c for c in cards) and any("-" in c for c in cards) and any(c.isdigit() for c in cards)


def test_ibans_mod97_valid(train_examples: list[SynthExample]) -> None:
    ibans = _values(train_examples, "IBAN")
    assert len(ibans) > 20
    for iban in ibans:
        assert _iban_ok(iban), iban


def test_phone_formats_vary(train_examples: list[SynthExample]) -> None:
    phones = _values(train_examples, "PHONE")
    assert any(p.startswith("+") for p in phones)
    assert any(not p.startswith("+") for p in phones)


def test_messy_and_multiline_variants(train_examples: list[SynthExample]) -> None:
    names = _values(train_examples, "PERSON")
    assert any(n == n.lower() and n.isascii() for n in names), "expected some all-lower-case names"
    assert any("\n" in a for a in _values(train_examples, "ADDRESS")), "expected multi-line addresses"


def test_every_template_renders_for_every_locale() -> None:
    for locale in ALL_LOCALES:
        faker = get_faker(locale)
        for i, template in enumerate(all_templates()):
            faker.seed_instance(i)
            ctx = SlotContext(faker=faker, rng=random.Random(i), locale=locale, lang=template.lang)
            for style in (Style(), Style(lower=True, typo_rate=0.5, strip_punct=True)):
                text, spans = render(template, ctx, style)
                ex = SynthExample(text, spans, template.template_id, locale, template.kind)
                _check_spans(ex)
                if template.kind == "pii":
                    assert spans, (template.template_id, locale)
    assert all(LOCALE_LANGUAGE[loc] for loc in ALL_LOCALES)


def test_to_jsonl_row(train_examples: list[SynthExample]) -> None:
    ex = next(e for e in train_examples if e.spans)
    row = to_jsonl_row(ex)
    assert set(row) == {"text", "spans"}
    assert row["text"] == ex.text
    assert row["spans"] == [{"label": s.label, "start": s.start, "end": s.end} for s in ex.spans]
    assert json.loads(json.dumps(row, ensure_ascii=False)) == row


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"n": 10, "negative_fraction": 1.5},
        {"n": 10, "locales": []},
        {"n": 10, "locales": ["xx_XX"]},
        {"n": 10, "locales": "en_US"},
        {"n": 10, "template_split": "test"},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_examples(**kwargs)  # type: ignore[arg-type]


def test_zero_examples() -> None:
    assert generate_examples(0) == []
