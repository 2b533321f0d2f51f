"""Is a string a calendar date a person could be born on? (The probe decides whether the context is a birthday.)

Accepted shapes, each checked as a real calendar day with a year from 1900 to this year (two-digit years allowed):
numeric day/month/year in either order or year-month-day with `. / -` or spaces; month names in English, German,
French, Spanish, Italian, Dutch and Portuguese (full or three-letter), with an optional weekday and ordinal suffix;
and Japanese `1985年3月4日`.
"""

from __future__ import annotations

import datetime as dt
import re

_MONTHS: tuple[tuple[str, ...], ...] = (
    ("january", "januar", "janvier", "enero", "gennaio", "januari", "janeiro", "jänner"),
    ("february", "februar", "février", "fevrier", "febrero", "febbraio", "februari", "fevereiro"),
    ("march", "märz", "maerz", "mars", "marzo", "maart", "março", "marco"),
    ("april", "avril", "abril", "aprile"),
    ("may", "mai", "mayo", "maggio", "mei", "maio"),
    ("june", "juni", "juin", "junio", "giugno", "junho"),
    ("july", "juli", "juillet", "julio", "luglio", "julho"),
    ("august", "août", "aout", "agosto", "augustus"),
    ("september", "septembre", "septiembre", "settembre", "setembro"),
    ("october", "oktober", "octobre", "octubre", "ottobre", "outubro"),
    ("november", "novembre", "noviembre", "novembro"),
    ("december", "dezember", "décembre", "decembre", "diciembre", "dicembre", "dezembro"),
)
_MONTH_OF: dict[str, int] = {}
for _number, _names in enumerate(_MONTHS, start=1):
    for _name in _names:
        _MONTH_OF.setdefault(_name, _number)
        _MONTH_OF.setdefault(_name[:3], _number)

_NUMERIC = re.compile(r"(\d{1,4})[./\- ]{1,2}(\d{1,2})[./\- ]{1,2}(\d{1,4})")
_JAPANESE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_WORD = re.compile(r"[^\W\d_]+\.?|\d+(?:st|nd|rd|th|er|º|°)?\.?", re.UNICODE)
_FILLER = frozenset({"de", "del", "of", "the", "le", "der", "den", "am", "on", "el", "il"})
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "lun", "mar", "mer", "jeu", "ven", "sam", "dim")


def _year(value: int, digits: int) -> int | None:
    if digits == 2:
        return 1900 + value if value > dt.date.today().year % 100 else 2000 + value
    return value if digits == 4 else None


def _real_day(year: int | None, month: int, day: int) -> bool:
    if year is None or not 1900 <= year <= dt.date.today().year:
        return False
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def _numeric(a: str, b: str, c: str) -> bool:
    if len(a) == 4:  # year-month-day
        return _real_day(int(a), int(b), int(c))
    year = _year(int(c), len(c))
    # day-month-year or month-day-year
    return _real_day(year, int(b), int(a)) or _real_day(year, int(a), int(b))


def _spelled(value: str) -> bool:
    words = [w.rstrip(".").lower() for w in _WORD.findall(value)]
    words = [w for w in words if (w not in _FILLER and w[:3] not in _WEEKDAYS) or w in _MONTH_OF]
    months = [_MONTH_OF[w] for w in words if w in _MONTH_OF]
    numbers = [re.match(r"\d+", w) for w in words]
    digits = [m.group(0) for m in numbers if m]
    if len(months) != 1 or len(digits) != 2 or len(words) != 3:
        return False
    day, year = sorted(digits, key=len)
    return _real_day(_year(int(year), len(year)), months[0], int(day))


def date_valid(value: str) -> bool:
    value = value.strip().strip(",.")
    if not value or len(value) > 40:
        return False
    if m := _JAPANESE.fullmatch(value):
        return _real_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if m := _NUMERIC.fullmatch(value):
        return _numeric(*m.groups())
    return _spelled(value)
