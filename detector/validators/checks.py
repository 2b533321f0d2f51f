"""Format checks of structured PII, each a function `str -> bool` built on a maintained library where one exists:
`stdnum` (Luhn, IBAN mod-97 and country length, national ids), `phonenumbers`, `email-validator` (syntax only, no
DNS), `ipaddress`, `urllib.parse`. Every check refuses a value with no letter or digit."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.exceptions import ValidationError

# (issuer, prefixes, lengths) — ISO/IEC 7812 ranges of the networks a consumer card may belong to.
_CARD_ISSUERS: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("visa", ("4",), (13, 16, 19)),
    ("mastercard", ("51", "52", "53", "54", "55", *(str(p) for p in range(2221, 2721))), (16,)),
    ("amex", ("34", "37"), (15,)),
    ("discover", ("6011", "65", *(str(p) for p in range(644, 650))), (16, 17, 18, 19)),
    ("jcb", ("35",), (16, 17, 18, 19)),
    ("jcb15", ("2131", "1800"), (15,)),
    ("diners", ("36", "38", "39", "300", "301", "302", "303", "304", "305"), (14, 15, 16, 17, 18, 19)),
    ("unionpay", ("62",), (16, 17, 18, 19)),
    ("maestro", ("50", "56", "57", "58", "6", "0604"), (12, 13, 14, 15, 16, 17, 18, 19)),
)
# Regions tried for a number written without a country code (a leading + or 00 needs none).
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "JP", "IN", "CH", "AT", "BE", "AU", "CA")
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]+")
_PHONE_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#)\s*\d{1,5}$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9\-]{1,63}(?<!-)", re.IGNORECASE)


def card_issuer(value: str) -> str | None:
    """The network whose prefix and length fit a Luhn-valid number written with digits, spaces or dashes."""
    if not re.fullmatch(r"\d[\d -]*\d", value):
        return None
    digits = re.sub(r"\D", "", value)
    if not luhn.is_valid(digits):
        return None
    for issuer, prefixes, lengths in _CARD_ISSUERS:
        if len(digits) in lengths and digits.startswith(prefixes):
            return issuer
    return None


def card_valid(value: str) -> bool:
    return card_issuer(value) is not None


def iban_valid(value: str) -> bool:
    """Country-specific length and BBAN format plus mod-97; letters must be upper case as printed on statements."""
    compact = value.replace(" ", "")
    if compact != compact.upper() or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", compact):
        return False
    try:
        return bool(stdnum_iban.is_valid(compact))
    except ValidationError:
        return False


def phone_valid(value: str) -> bool:
    """A possible number (length rules of its region), 7-15 digits, only phone punctuation."""
    value = _PHONE_EXTENSION.sub("", value.strip())
    digits = sum(c.isdigit() for c in value)
    if not 7 <= digits <= 15 or not _PHONE_CHARS.fullmatch(value):
        return False
    international = value.startswith(("+", "00"))
    candidate = "+" + value.lstrip("+")[2:] if value.startswith("00") else value
    for region in (None,) if international else PHONE_REGIONS:
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(candidate, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def email_valid(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return False
    return True


def ip_valid(value: str) -> bool:
    """A dotted-quad IPv4 or an IPv6 address, optionally with a /prefix; not a version string like 1.2."""
    try:
        ipaddress.ip_interface(value.strip("[]"))
    except ValueError:
        return False
    return ":" in value or value.count(".") == 3


def _host_valid(host: str) -> bool:
    if ip_valid(host):
        return True
    labels = host.rstrip(".").split(".")
    tld = labels[-1]
    return len(labels) >= 2 and all(_HOST_LABEL.fullmatch(p) for p in labels) and tld.isalpha() and len(tld) >= 2


def url_valid(value: str) -> bool:
    """An http(s)/ftp URL, or a bare `host/path` (people write "anna-k.dev/blog"), with a real host name: labels and
    an alphabetic top-level domain of two or more letters."""
    if any(c.isspace() for c in value) or ("@" in value and "://" not in value):  # a bare "@" is an e-mail
        return False
    candidate = value if "://" in value else "http://" + value
    try:
        parts = urlsplit(candidate)
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https", "ftp") and bool(host) and _host_valid(host)


def name_valid(value: str) -> bool:
    """A person's name or user name has a letter ("2018" is not a name); one Latin letter is not a name, one CJK
    character can be ("翼")."""
    return any(ch.isalpha() for ch in value) and (len(value) >= 2 or not value.isascii())


def address_valid(value: str) -> bool:
    return len(value) >= 4 and any(ch.isalpha() for ch in value)


_URL_START = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\$\{[^}]*\}|\{\{.*\}\})$")  # <your-password>, ${DB_PASSWORD}, {{ secret }}


def secret_valid(value: str) -> bool:
    """A password, key or token is one unbroken run of four or more characters, not a bare number (in real text a
    digit run is a count, an id or a phone; card, phone and ID labels cover the personal ones) and not a link (a
    random-looking short-link slug is a URL, labelled as one) nor a template placeholder."""
    return (
        len(value) >= 4
        and not any(ch.isspace() for ch in value)
        and not value.isdigit()
        and not _URL_START.match(value)
        and not _PLACEHOLDER.match(value)
    )
