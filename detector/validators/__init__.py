"""Validators of structured PII, one per label, in a registry like Presidio's recognizers.

A `Validator` has a `check` (is this string a well-formed value of the label?) and, for labels with a distinctive
shape, a `pattern` that proposes candidates anywhere in the text, whatever the probe said. The span decoder
(`detector.spans`) emits a span of a validated label only when its check accepts it, and accepts a pattern candidate at
a lower probe score than a probe-only span needs: the probe still decides whether the context makes the value personal.

`complete_structured` widens a probe span that missed a digit group at an edge until the check holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from probeguard.detector.validators.checks import (
    address_valid,
    card_valid,
    email_valid,
    iban_valid,
    ip_valid,
    name_valid,
    phone_valid,
    secret_valid,
    url_valid,
)
from probeguard.detector.validators.dates import date_valid
from probeguard.detector.validators.national_ids import national_id_valid


@dataclass(frozen=True)
class Validator:
    label: str
    check: Callable[[str], bool]
    pattern: re.Pattern[str] | None = None  # proposes candidates from the text alone (group "value" if it has one)
    grow: tuple[re.Pattern[str], re.Pattern[str]] | None = None  # one digit group left / right, for completion
    max_groups: int = 0
    trim_groups: bool = False  # retry a failing pattern match without its trailing space-separated groups
    method: str = ""  # what the check confirms, for explanations ("Luhn checksum and issuer prefix, python-stdnum")


class ValidatorRegistry:
    """Label -> validator; registering a label twice is an error (a silent override would change outputs)."""

    def __init__(self) -> None:
        self._by_label: dict[str, Validator] = {}

    def register(self, validator: Validator) -> None:
        if validator.label in self._by_label:
            raise ValueError(f"a validator for {validator.label} is already registered")
        self._by_label[validator.label] = validator

    def get(self, label: str) -> Validator | None:
        return self._by_label.get(label)

    @property
    def labels(self) -> Mapping[str, Validator]:
        return dict(self._by_label)

    def accepts(self, label: str, value: str) -> bool:
        """No validator: any value with a letter or digit. With one: its check."""
        if not any(ch.isalnum() for ch in value):
            return False
        validator = self._by_label.get(label)
        return validator is None or validator.check(value)

    def candidates(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(label, start, end) of every pattern match the label's check accepts; with `trim_groups` a failing match is
        retried without its trailing space-separated groups (an IBAN followed by a capitalised word)."""
        for label, validator in self._by_label.items():
            if validator.pattern is None:
                continue
            for m in validator.pattern.finditer(text):
                start, end = m.span("value") if "value" in validator.pattern.groupindex else m.span()
                while end > start:
                    value = text[start:end].rstrip(".,;:!?")
                    if validator.check(value):
                        yield label, start, start + len(value)
                        break
                    cut = text.rfind(" ", start, end)
                    if not validator.trim_groups or cut <= start:
                        break
                    end = cut


_CARD = (re.compile(r"(?<![\w])\d{1,6}[ -]?$"), re.compile(r"[ -]?\d{1,6}(?![\w])"))
_IBAN = (re.compile(r"(?<![\w])[A-Z0-9]{1,4} ?$"), re.compile(r" ?[A-Z0-9]{1,4}(?![\w])"))
# A secret has no shape of its own; its pattern is the value right after a cue ("my password is …", "pw: …").
_SECRET_CUE = re.compile(
    r"(?i)(?<![A-Za-z0-9-])(?:password|passwort|passwd|passcode|passphrase|pwd|pw|pin|kennwort|wachtwoord|mot de passe"
    r"|contraseña|senha|api[ _-]?key|secret|token)(?:(?:\s+(?:is|was|ist|est|es|now)\b:?)+|\s*[:=])\s*[\"'“‘]?"
    r"(?P<value>[^\s\"'”’]+)"
)
_ID_PATTERN = re.compile(
    r"(?<![\w-])(?:\d{3}-\d{2}-\d{4}"  # US SSN
    r"|[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]"  # GB NINO
    r"|\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z]"  # ES DNI / NIE
    r"|[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z])(?![\w-])"  # IT codice fiscale
)


def default_registry() -> ValidatorRegistry:
    registry = ValidatorRegistry()
    for validator in (
        Validator("CREDIT_CARD", card_valid, re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])"), _CARD, 4),
        Validator(
            "IBAN", iban_valid, re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){8,30}(?![\w])"), _IBAN, 6, True
        ),
        Validator("EMAIL", email_valid, re.compile(r"(?<![\w.+%-])[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")),
        Validator("URL", url_valid, re.compile(r"(?<![\w@])(?:https?://|ftp://|www\.)[^\s<>\"'()\[\]{}|`]+")),
        Validator(
            "IP_ADDRESS",
            ip_valid,
            re.compile(
                r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?"
                r"|(?=[0-9a-fA-F:]*::?)[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?![\w.:])"
            ),
        ),
        Validator("PHONE", phone_valid, re.compile(r"(?<![\w+.\-/])(?:\+|\(\+?)?\d[\d ().\-/]{5,20}\d(?![\w.\-/])")),
        Validator("SSN", national_id_valid, _ID_PATTERN),
        Validator("DATE_OF_BIRTH", date_valid),
        # sanity checks for labels without a format: the probe alone decides, but never on a digit run or a stray mark
        Validator("PERSON", name_valid),
        Validator("USERNAME", name_valid),
        Validator("ADDRESS", address_valid),
        Validator("PASSWORD", secret_valid, _SECRET_CUE),
    ):
        registry.register(dataclasses.replace(validator, method=_METHODS[validator.label]))
    return registry


# What each default check confirms (a sanity check confirms the shape only: the probe decided the span).
_METHODS = {
    "CREDIT_CARD": "Luhn checksum and issuer prefix and length (python-stdnum)",
    "IBAN": "ISO 13616 mod-97 checksum and country length (python-stdnum)",
    "EMAIL": "address syntax (email-validator, no DNS)",
    "URL": "scheme and host syntax",
    "IP_ADDRESS": "IPv4/IPv6 syntax (ipaddress)",
    "PHONE": "possible number in a known region (libphonenumber)",
    "SSN": "national-id checksum or format (python-stdnum)",
    "DATE_OF_BIRTH": "a real calendar date",
    "PERSON": "sanity check only: has a letter",
    "USERNAME": "sanity check only: has a letter",
    "ADDRESS": "sanity check only: four or more characters with a letter",
    "PASSWORD": "sanity check only: one unbroken run, not a number, link or placeholder",
}


DEFAULT_VALIDATORS = default_registry()


def complete_structured(
    text: str, start: int, end: int, label: str, registry: ValidatorRegistry = DEFAULT_VALIDATORS
) -> tuple[int, int]:
    """Extend [start, end) by whole digit groups until the label's check holds; unchanged if it never does."""
    validator = registry.get(label)
    if validator is None or validator.grow is None or validator.check(text[start:end]):
        return start, end
    left, right = validator.grow
    lefts = [start]
    for _ in range(validator.max_groups):
        m = left.search(text, 0, lefts[-1])
        if not m or m.start() == lefts[-1]:
            break
        lefts.append(m.start())
    rights = [end]
    for _ in range(validator.max_groups):
        m = right.match(text, rights[-1])
        if not m:
            break
        rights.append(m.end())
    for total in range(1, 2 * validator.max_groups + 1):  # fewest added groups first
        for n_left in range(min(total, len(lefts) - 1) + 1):
            n_right = total - n_left
            if n_right < len(rights) and validator.check(text[lefts[n_left] : rights[n_right]]):
                return lefts[n_left], rights[n_right]
    return start, end


__all__ = [
    "DEFAULT_VALIDATORS",
    "Validator",
    "ValidatorRegistry",
    "address_valid",
    "card_valid",
    "complete_structured",
    "date_valid",
    "default_registry",
    "email_valid",
    "iban_valid",
    "ip_valid",
    "name_valid",
    "national_id_valid",
    "phone_valid",
    "secret_valid",
    "url_valid",
]
