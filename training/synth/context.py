"""Per-example generation context: seeded Faker + RNG and coherent fake personas."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from faker import Faker
from faker.decode import unidecode

from probeguard.training.synth.locales import LOCALE_LANGUAGE

_NON_SLUG = re.compile(r"[^a-z0-9]+")
T = TypeVar("T")


def slugify(text: str) -> str:
    """Lower-case ASCII letters and digits only (used to derive e-mail local parts, usernames, URLs)."""
    return _NON_SLUG.sub("", unidecode(text).lower())


@dataclass(frozen=True)
class Person:
    """A fake person; ``first_ascii``/``last_ascii`` are romanised slugs used for e-mails and handles."""

    first: str
    last: str
    full: str
    first_ascii: str
    last_ascii: str


@dataclass
class SlotContext:
    """Everything a slot generator needs for one example. Values are cached per slot name by the renderer."""

    faker: Faker
    rng: random.Random
    locale: str
    lang: str  # language of the template text ("en", "de", ...), may differ from the locale's language
    persons: dict[int, Person] = field(default_factory=dict)
    memo: dict[str, object] = field(default_factory=dict)

    @property
    def locale_lang(self) -> str:
        return LOCALE_LANGUAGE[self.locale]

    def person(self, k: int = 1) -> Person:
        """The k-th person of this example (stable within the example)."""
        if k not in self.persons:
            self.persons[k] = self._new_person()
        return self.persons[k]

    def remember(self, key: str, factory: Callable[[], T]) -> T:
        """Memoise ``factory()`` under ``key`` so that related slots (e.g. an ID and its name) agree."""
        if key not in self.memo:
            self.memo[key] = factory()
        return cast(T, self.memo[key])

    def _new_person(self) -> Person:
        fk, rng = self.faker, self.rng
        if self.locale == "ja_JP":
            first, _, first_rom = fk.first_name_pair()
            last, _, last_rom = fk.last_name_pair()
            full = f"{last} {first}" if rng.random() < 0.6 else f"{last}{first}"
            return Person(first, last, full, slugify(first_rom), slugify(last_rom))
        first = fk.first_name()
        last = fk.last_name()
        last_ascii = slugify(last) or "user"
        if self.locale == "es_ES" and rng.random() < 0.5:
            last = f"{last} {fk.last_name()}"
        if self.locale in ("en_US", "en_GB") and rng.random() < 0.12:
            full = f"{first} {fk.first_name()[0]}. {last}"
        else:
            full = f"{first} {last}"
        return Person(first, last, full, slugify(first) or "user", last_ascii)
