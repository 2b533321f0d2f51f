"""spans: per-token label probabilities -> merged character spans.

1. Each token takes the label whose probability clears that label's threshold by the widest margin (a *seed*).
   Hysteresis: a neighbour of a labelled token joins it when its probability for that label is at least
   `weak_ratio` x the threshold (the last ".com" of an e-mail is often less sure than the rest).
2. Consecutive labelled tokens form one run when they share a label, when they touch inside one word (no whitespace
   between them: "123-45-678|9" typed SSN+PHONE is one entity), or when both are numeric and only separators lie
   between them (a card number tokenised digit by digit). A character that ends an entity of the label (`_BREAKS`:
   the comma of "Pat Metheny, Jeff Beck", the space of "@anna @ben") splits a run, and a token made only of such
   characters joins no run, whatever its probability.
3. A run's label is the one with the largest summed probability over its tokens; its score is that label's max.
4. The character range is snapped per label: whitespace trimmed, extended over the characters an entity of that
   label is made of (whole words for names and numbers, never across CJK; the e-mail, URL, IP, user name or secret
   token as a whole), wrapping punctuation trimmed. A name written as an @handle is a USERNAME, "@" included.
   Overlapping results of one label merge; of different labels the higher score wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import takewhile

import numpy as np

from probeguard.detector.validators import DEFAULT_VALIDATORS, ValidatorRegistry, complete_structured

_TRAILING = ".,;:!?)]}>\"'»“”’"
_LEADING = "([{<\"'«“‘"
_LEADING_MARKS = ".,;:!?"  # sentence punctuation never starts an entity ("1. Franz Heinzer")
_SEPARATORS = frozenset(" -./\u00a0")
WEAK_RATIO = 0.5
# A pattern candidate that passes its label's validator needs this fraction of the label's threshold: the format is
# already confirmed, the probe only has to say the context is personal.
VALIDATED_RATIO = 0.3


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


def _email_char(ch: str) -> bool:
    return _word_char(ch) or ch in "._%+-@"


def _url_char(ch: str) -> bool:
    return not ch.isspace() and ch not in "\"'<>()[]{}|`,"


def _ip_char(ch: str) -> bool:
    return ch.isdigit() or ch in ".:abcdefABCDEF"


def _secret_char(ch: str) -> bool:
    return not ch.isspace() and ch not in "\"'`,;"


def _card_char(ch: str) -> bool:
    return ch.isdigit()


# Characters an entity of each label may extend over; labels not listed extend over whole words.
_EXTEND: dict[str, Callable[[str], bool]] = {
    "EMAIL": _email_char,
    "URL": _url_char,
    "IP_ADDRESS": _ip_char,
    "USERNAME": _email_char,
    "PASSWORD": _secret_char,
    "CREDIT_CARD": _card_char,
}
_WHITESPACE = frozenset(" \t\n\r\u00a0")
_LIST_MARKS = frozenset(",;|&()[]{}")
# Characters that end an entity of a label: a list of names or handles is one entity per item. Labels not listed
# (addresses with commas, phone numbers in brackets, passphrases with spaces) have none.
_BREAKS: dict[str, frozenset[str]] = {
    "PERSON": _LIST_MARKS | frozenset("/!?:–—"),  # not quotes: Harold "Junior" Theriault
    "USERNAME": _LIST_MARKS | _WHITESPACE | frozenset('"“”'),
    "EMAIL": _LIST_MARKS | _WHITESPACE | frozenset('<>"“”'),
    "URL": frozenset(',;"“”<>') | _WHITESPACE,
    "IP_ADDRESS": frozenset(',;|&"“”') | _WHITESPACE,
}
MAX_GAP_CHARS = 3  # same-label runs this close (no line break between) are one entity: "GB56 DIUA 1680 …"
_MULTILINE = frozenset({"ADDRESS"})  # labels whose entities may continue on the next line
# Labels whose values may end in punctuation that belongs to them (a password "hunter2!").
_KEEP_TRAILING: dict[str, str] = {"PASSWORD": ".!?:)]}>", "URL": "/"}
_KEEP_LEADING: dict[str, str] = {"PASSWORD": _LEADING_MARKS}  # ".hunter2" keeps its dot


def snap(text: str, start: int, end: int, label: str = "") -> tuple[int, int]:
    """Trim whitespace, extend to the label's whole entity, trim wrapping punctuation. May return an empty range."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return start, start
    extend = _EXTEND.get(label, _word_char)
    if extend(text[start]):
        while start > 0 and extend(text[start - 1]):
            start -= 1
    if extend(text[end - 1]):
        while end < len(text) and extend(text[end]):
            end += 1
    keep, keep_leading = _KEEP_TRAILING.get(label, ""), _KEEP_LEADING.get(label, "")
    changed = True
    while changed and start < end:
        changed = False
        if text[start].isspace():
            start, changed = start + 1, True
        elif text[end - 1].isspace():
            end, changed = end - 1, True
        elif end - start >= 2 and _PAIRS.get(text[start]) == text[end - 1]:  # "(Anna)": wrapped as a whole
            start, end, changed = start + 1, end - 1, True
        elif text[start] in _LEADING and not _closed_inside(text, start, end):
            start, changed = start + 1, True
        elif text[start] in _LEADING_MARKS and text[start] not in keep_leading:
            start, changed = start + 1, True
        elif text[end - 1] in _TRAILING and text[end - 1] not in keep and not _opened_inside(text, start, end):
            end, changed = end - 1, True
    return start, end


_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}


def _closed_inside(text: str, start: int, end: int) -> bool:
    """The bracket at `start` is closed within the span, so it belongs to the value: "(0540) 482719"."""
    closer = _PAIRS.get(text[start])
    return closer is not None and closer in text[start + 1 : end]


def _opened_inside(text: str, start: int, end: int) -> bool:
    """The bracket at `end - 1` was opened within the span: "Gavardo (BS)"."""
    opener = _CLOSERS.get(text[end - 1])
    return opener is not None and opener in text[start : end - 1]


def _token_labels(probs: np.ndarray, thresholds: np.ndarray, weak_ratio: float) -> np.ndarray:
    """[n, L] probabilities -> [n] winning label index (-1: none), seeds grown by hysteresis."""
    margin = probs - thresholds[None, :]
    best = margin.argmax(axis=1)
    rows = np.arange(len(best))
    labels = np.where(margin[rows, best] >= 0, best, -1)
    weak = probs >= thresholds[None, :] * weak_ratio  # [n, L]
    for order in (range(1, len(labels)), range(len(labels) - 2, -1, -1)):
        step = -1 if order.step == 1 else 1
        for i in order:
            neighbour = labels[i + step]
            if labels[i] < 0 and neighbour >= 0 and weak[i, neighbour]:
                labels[i] = neighbour
    return labels


def _breaks(label: str, between: str) -> bool:
    """`between` (the characters between two tokens of `label`) holds a character that ends an entity of `label`."""
    stops = _BREAKS.get(label)
    return stops is not None and any(ch in stops for ch in between)


def _only_breaks(label: str, token: str) -> bool:
    """The token is nothing but characters that end an entity of `label` (a "," or " (" between two names)."""
    stops = _BREAKS.get(label)
    return stops is not None and bool(token.strip()) and all(ch in stops or ch.isspace() for ch in token)


def _numeric(text: str) -> bool:
    return any(ch.isdigit() for ch in text) and all(ch.isdigit() or ch in _SEPARATORS for ch in text.strip())


def decode_spans(
    text: str,
    offsets: np.ndarray,  # [n, 2] character offsets of each token
    probs: np.ndarray,  # [n, L] probability of each label at each token
    labels: Sequence[str],
    thresholds: np.ndarray,  # [L]
    weak_ratio: float = WEAK_RATIO,
    validated_ratio: float = VALIDATED_RATIO,
    validators: ValidatorRegistry = DEFAULT_VALIDATORS,
) -> list[Span]:
    if probs.shape != (len(offsets), len(labels)) or thresholds.shape != (len(labels),):
        raise ValueError(f"shape mismatch: offsets {offsets.shape}, probs {probs.shape}, thresholds {thresholds.shape}")
    token_label = _token_labels(probs, thresholds, weak_ratio)
    runs: list[list[int]] = []
    prev = -1
    for i in range(len(offsets)):
        s, e = int(offsets[i, 0]), int(offsets[i, 1])
        if s >= e or (prev >= 0 and not text[s:e].strip()):
            continue  # empty and whitespace-only tokens neither join nor break a run
        if token_label[i] < 0 or _only_breaks(labels[token_label[i]], text[s:e]):
            prev = -1
            continue
        if prev >= 0:
            ps, pe = int(offsets[prev, 0]), int(offsets[prev, 1])
            label = labels[token_label[i]]
            between = text[pe:s] + "".join(takewhile(lambda ch: not ch.isalnum(), text[s:e]))
            new_line = "\n" in between and label not in _MULTILINE
            same_label = token_label[i] == token_label[prev]
            touching = s == pe and not text[s].isspace()
            numeric = _numeric(text[ps:pe]) and _numeric(text[s:e]) and set(text[pe:s]) <= _SEPARATORS
            split = _breaks(label, between) or _breaks(labels[token_label[prev]], between)
            if not new_line and not split and (same_label or touching or numeric):
                runs[-1].append(i)
                prev = i
                continue
        runs.append([i])
        prev = i
    runs = _bridge_gaps(text, offsets, probs, labels, runs)
    spans = [_run_to_span(text, offsets, probs, labels, run, validators) for run in runs]
    confirmed = [s for s in spans if s is not None and validators.accepts(s.label, text[s.start : s.end])]
    found = _validated_candidates(text, offsets, probs, labels, thresholds * validated_ratio, validators)
    kept = [s for s in confirmed if not any(c.label == s.label and c.start < s.end and s.start < c.end for c in found)]
    return _resolve_overlaps(kept + found)


def _validated_candidates(
    text: str,
    offsets: np.ndarray,  # [n, 2]
    probs: np.ndarray,  # [n, L]
    labels: Sequence[str],
    floors: np.ndarray,  # [L] lowered thresholds
    validators: ValidatorRegistry,
) -> list[Span]:
    """Pattern matches their validator accepts, scored by the probe's max probability of that label on their tokens."""
    column = {label: i for i, label in enumerate(labels)}
    out: list[Span] = []
    for label, start, end in validators.candidates(text):
        col = column.get(label)
        inside = (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])
        if col is None or not inside.any():
            continue
        score = float(probs[inside, col].max())
        if score >= floors[col]:
            out.append(Span(label, start, end, score))
    return out


def _bridge_gaps(
    text: str, offsets: np.ndarray, probs: np.ndarray, labels: Sequence[str], runs: list[list[int]]
) -> list[list[int]]:
    """Join consecutive runs of the same (summed-probability) label separated by a short gap on one line."""
    out: list[list[int]] = []
    for run in runs:
        if out:
            prev = out[-1]
            begin = int(offsets[run[0], 0])
            while begin < len(text) and text[begin].isspace():
                begin += 1
            gap = text[int(offsets[prev[-1], 1]) : begin]
            label = int(probs[prev].sum(axis=0).argmax())
            same = label == int(probs[run].sum(axis=0).argmax())
            joinable = "\n" not in gap or labels[label] in _MULTILINE
            if same and len(gap) <= MAX_GAP_CHARS and joinable and not _breaks(labels[label], gap):
                out[-1] = prev + run
                continue
        out.append(run)
    return out


def _run_to_span(
    text: str,
    offsets: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    run: list[int],
    validators: ValidatorRegistry,
) -> Span | None:
    run_probs = probs[run]  # [run, L]
    label = int(run_probs.sum(axis=0).argmax())
    start, end = snap(text, int(offsets[run[0], 0]), int(offsets[run[-1], 1]), labels[label])
    if labels[label] == "PERSON" and "USERNAME" in labels and "@" in text[max(start - 1, 0) : start + 1]:
        # a name written as an @handle is a user name, "@" included
        start, end = snap(text, start, end, "USERNAME")
        return Span("USERNAME", start, end, float(run_probs[:, label].max())) if start < end else None
    start, end = complete_structured(text, start, end, labels[label], validators)
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
