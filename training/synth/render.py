"""Template definition and rendering with exact span bookkeeping.

A template is plain text with ``{slot}`` placeholders (lower-case identifiers only, so JSON braces and code are
left alone). Rendering concatenates literal pieces and slot values left to right and records the offsets of
labelled slots while doing so; the text is never searched afterwards. A slot used twice in one template gets the
same value both times (e.g. a first name in the greeting and in the signature).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from probeguard.training.synth.context import SlotContext
from probeguard.training.synth.fillers import filler_slots
from probeguard.training.synth.schema import PII_LABELS, SynthSpan
from probeguard.training.synth.values import SlotFn, pii_slots

SLOT_RE = re.compile(r"\{([a-z][a-z0-9_]*)\}")
HELDOUT_PERCENT = 20
_LOWERABLE = frozenset({"PERSON", "EMAIL", "USERNAME", "ADDRESS", "URL", None})
_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")
_PUNCT = re.compile(r"[,.!?;](?=\s|$)")


@dataclass(frozen=True)
class Template:
    """A text template. ``casual`` templates may be rendered lower-case, with typos or without punctuation."""

    template_id: str
    text: str
    kind: str = "pii"
    lang: str = "en"
    casual: bool = False

    @property
    def heldout(self) -> bool:
        """Stable ~20% split decided by a hash of the template id only."""
        digest = hashlib.sha256(self.template_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT

    def slot_names(self) -> list[str]:
        return SLOT_RE.findall(self.text)


def pii(template_id: str, text: str, *, lang: str = "en", casual: bool = False) -> Template:
    return Template(template_id, text, "pii", lang, casual)


def neg(template_id: str, text: str, *, lang: str = "en", casual: bool = False) -> Template:
    return Template(template_id, text, "negative", lang, casual)


@dataclass(frozen=True)
class Style:
    lower: bool = False
    typo_rate: float = 0.0
    strip_punct: bool = False


def choose_style(template: Template, rng: random.Random) -> Style:
    """Messy variants (all lower case, typos, no punctuation) for casual templates."""
    if not template.casual or rng.random() < 0.45:
        return Style()
    return Style(
        lower=rng.random() < 0.6,
        typo_rate=0.12 if rng.random() < 0.4 else 0.0,
        strip_punct=rng.random() < 0.35,
    )


@lru_cache(maxsize=1)
def slot_table() -> dict[str, tuple[str | None, SlotFn]]:
    """All known slots: name -> (label or None, generator)."""
    table: dict[str, tuple[str | None, SlotFn]] = dict(pii_slots())
    for name, fn in filler_slots().items():
        if name in table:
            raise ValueError(f"slot {name!r} defined twice")
        table[name] = (None, fn)
    for label, _ in table.values():
        if label is not None and label not in PII_LABELS:
            raise ValueError(f"unknown label {label!r}")
    return table


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _style_literal(text: str, style: Style, rng: random.Random) -> str:
    out = text
    if style.strip_punct:
        stripped = _PUNCT.sub("", out)
        out = stripped if stripped.strip() or not out.strip() else out
    if style.typo_rate:
        out = _TYPO_WORD.sub(lambda m: _typo(m.group(0), rng) if rng.random() < style.typo_rate else m.group(0), out)
    if style.lower:
        out = out.lower()
    return out


def render(template: Template, ctx: SlotContext, style: Style) -> tuple[str, tuple[SynthSpan, ...]]:
    """Fill ``template`` and return ``(text, spans)`` with spans in text order."""
    table = slot_table()
    pieces: list[str] = []
    spans: list[SynthSpan] = []
    values: dict[str, str] = {}
    pos = last = 0
    for match in SLOT_RE.finditer(template.text):
        literal = _style_literal(template.text[last : match.start()], style, ctx.rng)
        pieces.append(literal)
        pos += len(literal)
        name = match.group(1)
        if name not in table:
            raise ValueError(f"template {template.template_id!r} uses unknown slot {name!r}")
        label, fn = table[name]
        if name not in values:
            raw = fn(ctx).strip()
            if not raw:
                raise ValueError(f"slot {name!r} produced an empty value")
            values[name] = raw.lower() if style.lower and label in _LOWERABLE else raw
        value = values[name]
        pieces.append(value)
        if label is not None:
            spans.append(SynthSpan(label, pos, pos + len(value)))
        pos += len(value)
        last = match.end()
    pieces.append(_style_literal(template.text[last:], style, ctx.rng))
    text = "".join(pieces)
    check_spans(text, spans)
    return text, tuple(spans)


def check_spans(text: str, spans: list[SynthSpan] | tuple[SynthSpan, ...]) -> None:
    """Raise ValueError unless spans are in range, sorted, non-overlapping, non-empty and whitespace-trimmed."""
    prev_end = 0
    for span in spans:
        if span.label not in PII_LABELS:
            raise ValueError(f"unknown label {span.label!r}")
        if not 0 <= span.start < span.end <= len(text) or span.start < prev_end:
            raise ValueError(f"bad span {span} in {text!r}")
        value = text[span.start : span.end]
        if value != value.strip():
            raise ValueError(f"span {span} has surrounding whitespace: {value!r}")
        prev_end = span.end
