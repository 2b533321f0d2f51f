"""Checksums of structured PII and checksum-guided completion of a partly detected number.

A probe often marks most of a card number or IBAN but misses a digit group at an edge (Gemma tokenises digits one
by one). When the detected part fails its checksum, neighbouring groups are added, one at a time on either side,
until the checksum holds; if it never does, the span is left as detected (recall over tidiness).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CARD_RIGHT = re.compile(r"[ -]?\d{1,6}(?![\w])")
_CARD_LEFT = re.compile(r"(?<![\w])\d{1,6}[ -]?$")
_IBAN_RIGHT = re.compile(r" ?[A-Z0-9]{1,4}(?![\w])")
_IBAN_LEFT = re.compile(r"(?<![\w])[A-Z0-9]{1,4} ?$")


def luhn_valid(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 13 <= len(digits) <= 19 or any(not (c.isdigit() or c in " -") for c in value):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(value: str) -> bool:
    compact = value.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_CHECKS: dict[str, tuple[Callable[[str], bool], re.Pattern[str], re.Pattern[str], int]] = {
    "CREDIT_CARD": (luhn_valid, _CARD_LEFT, _CARD_RIGHT, 4),
    "IBAN": (iban_valid, _IBAN_LEFT, _IBAN_RIGHT, 6),
}


def complete_structured(text: str, start: int, end: int, label: str) -> tuple[int, int]:
    """Extend [start, end) by whole digit groups until the label's checksum holds; unchanged if it never does."""
    spec = _CHECKS.get(label)
    if spec is None or spec[0](text[start:end]):
        return start, end
    valid, left, right, max_groups = spec
    candidates: list[tuple[int, int]] = []
    lefts = [start]
    for _ in range(max_groups):
        m = left.search(text, 0, lefts[-1])
        if not m or m.start() == lefts[-1]:
            break
        lefts.append(m.start())
    rights = [end]
    for _ in range(max_groups):
        m = right.match(text, rights[-1])
        if not m:
            break
        rights.append(m.end())
    for total in range(1, 2 * max_groups + 1):  # fewest added groups first
        for n_left in range(min(total, len(lefts) - 1) + 1):
            n_right = total - n_left
            if n_right < len(rights):
                candidates.append((lefts[n_left], rights[n_right]))
    for s, e in candidates:
        if valid(text[s:e]):
            return s, e
    return start, end
