"""Property test: whatever the probabilities, decoded spans are valid, ordered, non-overlapping and trimmed."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.spans import decode_spans

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
