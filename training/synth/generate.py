"""Deterministic example generation."""

from __future__ import annotations

import random
from collections.abc import Sequence

from probeguard.training.synth.context import SlotContext
from probeguard.training.synth.locales import ALL_LOCALES, DEFAULT_LOCALES, LOCALE_LANGUAGE, get_faker
from probeguard.training.synth.registry import SPLITS, Split, template_pool
from probeguard.training.synth.render import Template, choose_style, render
from probeguard.training.synth.schema import SynthExample

NATIVE_LANGUAGE_SHARE = 0.35  # chance of a template in the locale's own language (when one exists)


def _pick_template(kind: str, locale: str, split: str, rng: random.Random) -> Template:
    lang = LOCALE_LANGUAGE[locale]
    english = template_pool(split, kind, "en")
    native = template_pool(split, kind, lang) if lang != "en" else ()
    use_native = bool(native) and (not english or rng.random() < NATIVE_LANGUAGE_SHARE)
    pool = native if use_native else english
    if not pool:
        raise ValueError(f"no {kind} templates available for locale {locale!r} in split {split!r}")
    return rng.choice(pool)


def _validate(n: int, locales: Sequence[str], template_split: str, negative_fraction: float) -> tuple[str, ...]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if template_split not in SPLITS:
        raise ValueError(f"template_split must be one of {SPLITS}, got {template_split!r}")
    if not 0.0 <= negative_fraction <= 1.0:
        raise ValueError(f"negative_fraction must be in [0, 1], got {negative_fraction!r}")
    if isinstance(locales, str):
        raise ValueError("locales must be a sequence of locale names, not a single string")
    chosen = tuple(locales)
    if not chosen:
        raise ValueError("locales must not be empty")
    unknown = [loc for loc in chosen if loc not in LOCALE_LANGUAGE]
    if unknown:
        raise ValueError(f"unsupported locales {unknown}; choose from {ALL_LOCALES}")
    return chosen


def generate_examples(
    n: int,
    *,
    seed: int = 0,
    locales: Sequence[str] = DEFAULT_LOCALES,
    template_split: Split = "train",
    negative_fraction: float = 0.35,
) -> list[SynthExample]:
    """Generate ``n`` synthetic examples; identical arguments always give identical output.

    Exactly ``round(n * negative_fraction)`` examples are hard negatives (kind="negative"), shuffled among the
    PII examples. Each example draws its locale uniformly from ``locales`` and a template from ``template_split``.
    """
    chosen = _validate(n, locales, template_split, negative_fraction)
    master = random.Random(f"probeguard-synth/{seed}")
    n_negative = round(n * negative_fraction)
    kinds = ["negative"] * n_negative + ["pii"] * (n - n_negative)
    master.shuffle(kinds)
    examples: list[SynthExample] = []
    for kind in kinds:
        locale = master.choice(chosen)
        template = _pick_template(kind, locale, template_split, master)
        example_seed = master.getrandbits(64)
        faker = get_faker(locale)
        faker.seed_instance(example_seed)
        rng = random.Random(example_seed)
        ctx = SlotContext(faker=faker, rng=rng, locale=locale, lang=template.lang)
        text, spans = render(template, ctx, choose_style(template, rng))
        examples.append(SynthExample(text, spans, template.template_id, locale, kind))
    return examples


def to_jsonl_row(ex: SynthExample) -> dict[str, object]:
    """The JSONL training format: ``{"text": ..., "spans": [{"label", "start", "end"}, ...]}``."""
    return {
        "text": ex.text,
        "spans": [{"label": s.label, "start": s.start, "end": s.end} for s in ex.spans],
    }
