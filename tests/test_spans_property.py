"""Property test: whatever the probabilities, decoded spans are valid, ordered, non-overlapping and trimmed."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from probeguard.detector.spans import decode_spans
from probeguard.detector.validators import DEFAULT_VALIDATORS
from probeguard.training.synth import PII_LABELS as ALL_LABELS
from probeguard.training.synth import generate_examples

LABELS = ("PERSON", "EMAIL", "PHONE", "ADDRESS", "CREDIT_CARD", "IBAN", "URL", "PASSWORD")
ALPHABET = st.sampled_from(list("ab Z9-.@/:()\n😀東 \u200bé,'\"<>"))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=60), seed=st.integers(0, 2**32 - 1))
def test_decoded_spans_are_always_well_formed(text, seed):
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(0, len(text) + 1, size=rng.integers(1, len(text) + 1)).tolist()) | {0, len(text)})
    offsets = np.array(list(itertools.pairwise(cuts)), dtype=np.int64)
    probs = rng.uniform(0, 1, size=(len(offsets), len(LABELS))).astype(np.float32)
    thresholds = rng.uniform(0.3, 0.9, size=len(LABELS)).astype(np.float32)
    spans = decode_spans(text, offsets, probs, LABELS, thresholds)
    last_end = 0
    for span in spans:
        assert span.label in LABELS and 0 <= span.start < span.end <= len(text)
        assert span.start >= last_end, "sorted and non-overlapping"
        value = text[span.start : span.end]
        assert value == value.strip() and value
        assert 0.0 <= span.score <= 1.0
        last_end = span.end


def _real_and_generated_texts() -> list[str]:
    """Generated PII texts (every structured type, many locales) and real tweets / Wikipedia lines when present."""
    texts = [e.text for e in generate_examples(120, seed=11, template_split="all")]
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pii_real"
    for name in ("wikigold.jsonl", "btc_tweets.jsonl"):
        if (shared / name).is_file():
            lines = (shared / name).read_text(encoding="utf-8").splitlines()[:80]
            texts += [json.loads(line)["text"] for line in lines]
    texts.append("a " * 2000)
    return texts


TEXTS = _real_and_generated_texts()


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, len(TEXTS) - 1), seed=st.integers(0, 2**32 - 1))
def test_no_emitted_structured_span_fails_its_validator(index, seed):
    """Whatever the probe says (random probabilities, often above threshold), a span of a label with a validator is
    accepted by that validator, and no span lacks a letter or digit."""
    text = TEXTS[index]
    rng = np.random.default_rng(seed)
    bounds = [m.span() for m in re.finditer(r"\s*(?:\w{1,4}|[^\w\s])", text)]  # word pieces and punctuation
    offsets = np.array(bounds, dtype=np.int64)
    probs = rng.uniform(0, 1, size=(len(offsets), len(ALL_LABELS))).astype(np.float32) ** 2
    thresholds = np.full(len(ALL_LABELS), 0.5, dtype=np.float32)
    for span in decode_spans(text, offsets, probs, ALL_LABELS, thresholds):
        assert DEFAULT_VALIDATORS.accepts(span.label, text[span.start : span.end]), span
