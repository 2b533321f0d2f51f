"""spans: per-token label probabilities -> merged character spans.

1. Each token takes the label whose probability clears that label's threshold by the widest margin (or none).
2. Consecutive labelled tokens form one run when they share a label, or when they touch inside one word (no
   whitespace between them): a word is one entity, so "123-45-678|9" typed SSN+PHONE becomes one SSN run.
3. A run's label is the one with the largest summed probability over its tokens; its score is that label's max.
4. The character range is snapped: whitespace trimmed, extended to whole words (not across CJK, which has no
   spaces), wrapping punctuation trimmed. Overlapping results of one label merge; of different labels the higher
   score wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TRAILING = ".,;:!?)]}>\"'»“”’"
_LEADING = "([{<\"'«“‘"


@dataclass(frozen=True)
class Span:
    label: str
    start: int  # character offsets into the text, [start, end)
    end: int
    score: float  # max calibrated probability of `label` over the span's tokens

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "start": self.start, "end": self.end, "score": round(self.score, 4)}


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF  # ideographs
        or 0xAC00 <= o <= 0xD7AF  # hangul
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
    )


def _word_char(ch: str) -> bool:
    return ch.isalnum() and not _is_cjk(ch)


def snap(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim whitespace, extend to whole words, trim wrapping punctuation. May return an empty range."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return start, start
    if _word_char(text[start]):
        while start > 0 and _word_char(text[start - 1]):
            start -= 1
    if _word_char(text[end - 1]):
        while end < len(text) and _word_char(text[end]):
            end += 1
    while start < end and text[start] in _LEADING:
        start += 1
    while end > start and text[end - 1] in _TRAILING:
        end -= 1
    return start, end


def _token_labels(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[n, L] probabilities -> [n] index of the winning label, -1 where no label clears its threshold."""
    margin = probs - thresholds[None, :]
    best = margin.argmax(axis=1)
    return np.where(margin[np.arange(len(best)), best] >= 0, best, -1)


def decode_spans(
    text: str,
    offsets: np.ndarray,  # [n, 2] character offsets of each token
    probs: np.ndarray,  # [n, L] probability of each label at each token
    labels: Sequence[str],
    thresholds: np.ndarray,  # [L]
) -> list[Span]:
    if probs.shape != (len(offsets), len(labels)) or thresholds.shape != (len(labels),):
        raise ValueError(f"shape mismatch: offsets {offsets.shape}, probs {probs.shape}, thresholds {thresholds.shape}")
    token_label = _token_labels(probs, thresholds)
    runs: list[list[int]] = []
    prev = -1
    for i in range(len(offsets)):
        s, e = int(offsets[i, 0]), int(offsets[i, 1])
        if token_label[i] < 0 or s >= e:
            prev = -1
            continue
        if prev >= 0:
            same_label = token_label[i] == token_label[prev]
            touching = s == int(offsets[prev, 1]) and not text[s].isspace()
            if same_label or touching:
                runs[-1].append(i)
                prev = i
                continue
        runs.append([i])
        prev = i
    spans = [_run_to_span(text, offsets, probs, labels, run) for run in runs]
    return _resolve_overlaps([s for s in spans if s is not None])


def _run_to_span(
    text: str, offsets: np.ndarray, probs: np.ndarray, labels: Sequence[str], run: list[int]
) -> Span | None:
    run_probs = probs[run]  # [run, L]
    label = int(run_probs.sum(axis=0).argmax())
    start, end = snap(text, int(offsets[run[0], 0]), int(offsets[run[-1], 1]))
    if start >= end:
        return None
    return Span(labels[label], start, end, float(run_probs[:, label].max()))


def _resolve_overlaps(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if out and span.start < out[-1].end:
            last = out[-1]
            if span.label == last.label:
                out[-1] = Span(last.label, last.start, max(last.end, span.end), max(last.score, span.score))
            elif span.score > last.score:
                out[-1] = span
            continue
        out.append(span)
    return out
