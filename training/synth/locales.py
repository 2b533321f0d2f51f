"""Locale configuration: cached Faker instances, languages, phone patterns and date formatting."""

from __future__ import annotations

import datetime as dt
import random
from functools import cache

from faker import Faker

ALL_LOCALES: tuple[str, ...] = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "ja_JP")
DEFAULT_LOCALES: tuple[str, ...] = ALL_LOCALES[:7]

LOCALE_LANGUAGE: dict[str, str] = {
    "en_US": "en",
    "en_GB": "en",
    "de_DE": "de",
    "fr_FR": "fr",
    "es_ES": "es",
    "it_IT": "it",
    "nl_NL": "nl",
    "ja_JP": "ja",
}

# Phone patterns: "#" is any digit, "%" a non-zero digit. Used next to Faker's own ``phone_number()`` so that
# both national and international formats (with and without separators) show up for every locale.
PHONE_PATTERNS: dict[str, tuple[str, ...]] = {
    "en_US": ("+1 %##-%##-####", "+1 (%##) %##-####", "(%##) %##-####", "%##.%##.####", "%##-%##-####", "+1%##%######"),
    "en_GB": (
        "+44 7%## ######",
        "07%## ######",
        "+44 (0)20 7### ####",
        "020 7### ####",
        "+447%########",
        "0161 ### ####",
    ),
    "de_DE": (
        "+49 15# ########",
        "+49 (0)30 ########",
        "0151 ########",
        "0171-#######",
        "+49 89 #######",
        "030 / #######",
    ),
    "fr_FR": ("+33 6 ## ## ## ##", "06 ## ## ## ##", "07.##.##.##.##", "+33 1 ## ## ## ##", "+336########"),
    "es_ES": ("+34 6## ### ###", "6## ## ## ##", "+34 91 ### ## ##", "6########", "+34 6########"),
    "it_IT": ("+39 3## ### ####", "3## #######", "+39 06 ########", "02 ########", "+39 3#########"),
    "nl_NL": ("+31 6 ########", "06-########", "06 ## ## ## ##", "+31 (0)20 ### ####", "020-#######"),
    "ja_JP": ("090-####-####", "080-####-####", "+81 90-####-####", "03-####-####", "+81 3 #### ####"),
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "it": (
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
}


@cache
def get_faker(locale: str) -> Faker:
    """Return the cached Faker instance for ``locale`` (callers must re-seed it before use)."""
    if locale not in LOCALE_LANGUAGE:
        raise ValueError(f"unsupported locale {locale!r}; choose from {ALL_LOCALES}")
    faker = Faker(locale)
    for provider in faker.providers:
        # Faker's it_IT builds its city list from a set, so its order (and every seeded draw) follows PYTHONHASHSEED
        cities = getattr(provider, "cities", None)
        if isinstance(cities, list):
            cities.sort()
    return faker


def numerify(pattern: str, rng: random.Random) -> str:
    """Replace ``#`` with a random digit and ``%`` with a random non-zero digit."""
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "%":
            out.append(str(rng.randrange(1, 10)))
        else:
            out.append(ch)
    return "".join(out)


def random_date(rng: random.Random, first_year: int, last_year: int) -> dt.date:
    """A uniformly random calendar date between Jan 1 of ``first_year`` and Dec 31 of ``last_year``."""
    start = dt.date(first_year, 1, 1).toordinal()
    end = dt.date(last_year, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end))


def format_date(day: dt.date, locale: str, rng: random.Random) -> str:
    """Format ``day`` in one of the ways people in ``locale`` commonly write dates."""
    lang = LOCALE_LANGUAGE[locale]
    d, m, y = day.day, day.month, day.year
    iso = day.isoformat()
    if lang == "ja":
        options = [f"{y}年{m}月{d}日", f"{y}/{m:02d}/{d:02d}", iso]
    elif locale == "en_US":
        name = MONTHS["en"][m - 1]
        options = [f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{name} {d}, {y}", f"{name[:3]} {d} {y}", iso]
    elif lang == "en":
        name = MONTHS["en"][m - 1]
        options = [f"{d:02d}/{m:02d}/{y}", f"{d} {name} {y}", f"{d} {name[:3]} {y}", iso]
    else:
        name = MONTHS[lang][m - 1]
        sep = {"de": ".", "nl": "-"}.get(lang, "/")
        spelled = {"de": f"{d}. {name} {y}", "es": f"{d} de {name} de {y}"}.get(lang, f"{d} {name} {y}")
        options = [f"{d:02d}{sep}{m:02d}{sep}{y}", spelled, iso, f"{d}{sep}{m}{sep}{y}"]
    return rng.choice(options)
