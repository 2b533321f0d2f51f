"""Data types and the canonical label set of the synthetic PII generator."""

from __future__ import annotations

from dataclasses import dataclass

from probeguard.detector.labels import PII_LABELS  # noqa: F401  (re-exported: the generator's label set)

EXAMPLE_KINDS: tuple[str, ...] = ("pii", "negative")


@dataclass(frozen=True)
class SynthSpan:
    """A labelled character span ``text[start:end]`` of a :class:`SynthExample`."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class SynthExample:
    """One generated text with its exact, sorted, non-overlapping PII spans."""

    text: str
    spans: tuple[SynthSpan, ...]
    template_id: str
    locale: str
    kind: str  # "pii" | "negative"
