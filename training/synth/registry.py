"""All templates in one place, with the deterministic train / heldout split."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Literal

from probeguard.training.synth.negatives import NEGATIVE_TEMPLATES
from probeguard.training.synth.render import Template, slot_table
from probeguard.training.synth.templates_chat import CHAT_TEMPLATES
from probeguard.training.synth.templates_forms import FORM_TEMPLATES
from probeguard.training.synth.templates_intl import INTL_TEMPLATES
from probeguard.training.synth.templates_tech import TECH_TEMPLATES

Split = Literal["train", "heldout", "all"]
SPLITS: tuple[str, ...] = ("train", "heldout", "all")


@lru_cache(maxsize=1)
def all_templates() -> tuple[Template, ...]:
    """Every template, validated once: unique ids, known kinds and slots."""
    templates = CHAT_TEMPLATES + FORM_TEMPLATES + TECH_TEMPLATES + INTL_TEMPLATES + NEGATIVE_TEMPLATES
    seen: set[str] = set()
    table = slot_table()
    for t in templates:
        if t.template_id in seen:
            raise ValueError(f"duplicate template id {t.template_id!r}")
        seen.add(t.template_id)
        if t.kind not in ("pii", "negative"):
            raise ValueError(f"template {t.template_id!r} has unknown kind {t.kind!r}")
        unknown = [s for s in t.slot_names() if s not in table]
        if unknown:
            raise ValueError(f"template {t.template_id!r} uses unknown slots {unknown}")
        if t.kind == "pii" and not any(table[s][0] for s in t.slot_names()):
            raise ValueError(f"PII template {t.template_id!r} has no labelled slot")
    return templates


def templates_for(split: str) -> tuple[Template, ...]:
    """Templates of one split: "train" (~80%), "heldout" (~20%, disjoint from train) or "all"."""
    if split not in SPLITS:
        raise ValueError(f"template_split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return all_templates()
    want_heldout = split == "heldout"
    return tuple(t for t in all_templates() if t.heldout == want_heldout)


@cache
def template_pool(split: str, kind: str, lang: str) -> tuple[Template, ...]:
    return tuple(t for t in templates_for(split) if t.kind == kind and t.lang == lang)
