"""Slot generators for PII values. Each returns a non-empty string without surrounding whitespace."""

from __future__ import annotations

import random
from collections.abc import Callable

from probeguard.training.synth import credentials as cred
from probeguard.training.synth.context import SlotContext, slugify
from probeguard.training.synth.locales import PHONE_PATTERNS, format_date, numerify, random_date

SlotFn = Callable[[SlotContext], str]

_TLDS: dict[str, tuple[str, ...]] = {
    "en_US": ("com", "net", "us"),
    "en_GB": ("co.uk", "com", "uk"),
    "de_DE": ("de", "com"),
    "fr_FR": ("fr", "com"),
    "es_ES": ("es", "com"),
    "it_IT": ("it", "com"),
    "nl_NL": ("nl", "com"),
    "ja_JP": ("jp", "com"),
}
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        if pos >= len(digits):
            break
        parts.append(digits[pos : pos + size])
        pos += size
    if pos < len(digits):
        parts.append(digits[pos:])
    return sep.join(parts)


# --------------------------------------------------------------------------------------------- national IDs
def _steuer_id(rng: random.Random) -> str:
    """German tax id: 11 digits, no leading 0, in the first ten one digit appears two or three times and every other
    at most once, ISO 7064 MOD 11,10 check digit."""
    while True:
        twice = rng.randrange(10)
        pool = [d for d in range(10) if d != twice]
        rng.shuffle(pool)
        count = rng.choice((2, 3))
        digits = pool[: 10 - count] + [twice] * count
        rng.shuffle(digits)
        if digits[0] != 0:
            break
    product = 10
    for d in digits:
        total = (d + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return "".join(map(str, digits)) + str(check)


def _kvnr(rng: random.Random) -> str:
    """German health insurance number: letter, 8 digits, check digit (letter as 01-26, weights 1 2 1 2…, cross sums)."""
    letter = chr(65 + rng.randrange(26))
    body = "".join(str(rng.randrange(10)) for _ in range(8))
    digits = f"{ord(letter) - 64:02d}" + body
    total = sum(sum(divmod(int(d) * (1 + i % 2), 10)) for i, d in enumerate(digits))
    return f"{letter}{body}{total % 10}"


# HMRC never issues these first letters (D F I Q U V), second letters (D F I O Q U V) or prefixes.
_NINO_FIRST, _NINO_SECOND = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
_NINO_UNUSED = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def _nino(rng: random.Random) -> str:
    while (prefix := rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)) in _NINO_UNUSED:
        pass
    return f"{prefix}{rng.randrange(10**6):06d}{rng.choice('ABCD')}"


def _dni(rng: random.Random) -> str:
    n = rng.randrange(10_000_000, 100_000_000)
    return f"{n:08d}{_DNI_LETTERS[n % 23]}"


def _nie(rng: random.Random) -> str:
    idx, body = rng.randrange(3), rng.randrange(10_000_000)
    return f"{'XYZ'[idx]}{body:07d}{_DNI_LETTERS[(idx * 10_000_000 + body) % 23]}"


def _my_number(rng: random.Random) -> str:
    """Japanese individual number (12 digits with check digit)."""
    body = [rng.randrange(10) for _ in range(11)]
    total = sum(d * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(reversed(body), start=1))
    rem = total % 11
    return "".join(map(str, body)) + str(0 if rem <= 1 else 11 - rem)


def _national_id(ctx: SlotContext) -> tuple[str, str, str]:
    """(value, English name, native name) of a national identifier for the example's locale."""
    fk, rng, loc = ctx.faker, ctx.rng, ctx.locale
    if loc == "en_US":
        ssn = fk.ssn()
        return (ssn if rng.random() < 0.8 else ssn.replace("-", "")), "SSN", "SSN"
    if loc == "en_GB":
        nino = _nino(rng)
        spaced = f"{nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8]}"
        return (nino if rng.random() < 0.6 else spaced), "National Insurance number", "NI number"
    if loc == "de_DE":
        kind = rng.randrange(3)
        if kind == 0:
            tid = _steuer_id(rng)
            return (_group(tid, (2, 3, 3, 3), " ") if rng.random() < 0.4 else tid), "tax ID", "Steuer-ID"
        if kind == 1:
            return _kvnr(rng), "health insurance number", "Krankenversichertennummer"
        return fk.rvnr(birthdate=random_date(rng, 1950, 2004)), "pension insurance number", "Rentenversicherungsnummer"
    if loc == "fr_FR":
        nir = fk.ssn()
        value = _group(nir, (1, 2, 2, 2, 3, 3, 2), " ") if rng.random() < 0.5 else nir
        return value, "social security number", "numéro de sécurité sociale"
    if loc == "es_ES":
        return (_dni(rng), "DNI", "DNI") if rng.random() < 0.7 else (_nie(rng), "NIE", "NIE")
    if loc == "it_IT":
        return fk.ssn(), "tax code", "codice fiscale"
    if loc == "nl_NL":
        return fk.ssn(), "BSN", "BSN"
    number = _my_number(rng)
    return (_group(number, (4, 4, 4), " ") if rng.random() < 0.4 else number), "My Number", "マイナンバー"


def national_id(ctx: SlotContext) -> str:
    return ctx.remember("national_id", lambda: _national_id(ctx))[0]


def id_name(ctx: SlotContext) -> str:
    _, english, native = ctx.remember("national_id", lambda: _national_id(ctx))
    return english if ctx.lang == "en" else native


# ------------------------------------------------------------------------------------------- contact details
def email(ctx: SlotContext, k: int = 1, work: bool = False) -> str:
    p, rng, fk = ctx.person(k), ctx.rng, ctx.faker
    f, last = p.first_ascii, p.last_ascii
    local = rng.choice(
        (
            f"{f}.{last}",
            f"{f[0]}{last}",
            f"{f}{last}{rng.randint(1, 99)}",
            f"{last}.{f}",
            f"{f}_{last}",
            f"{f}{rng.randint(70, 99)}",
            f"{f[0]}.{last}",
        )
    )
    domain = fk.domain_name() if work or rng.random() < 0.25 else fk.free_email_domain()
    return f"{local}@{domain}"


def username(ctx: SlotContext, k: int = 1) -> str:
    def make() -> str:
        p, rng = ctx.person(k), ctx.rng
        f, last = p.first_ascii, p.last_ascii
        options = (
            f"{f}{last[0]}",
            f"{f}_{last}",
            f"{f}.{last}",
            f"{f[0]}{last}{rng.randint(1, 999)}",
            slugify(ctx.faker.user_name()) or f"{f}{last}",
            f"{rng.choice(cred.WORDS)}_{f}{rng.randint(1, 99)}",
            f"{last}{rng.randint(60, 99)}",
            f"x{f}{last}x",
        )
        return rng.choice(options)

    return ctx.remember(f"username{k}", make)


def phone(ctx: SlotContext) -> str:
    rng = ctx.rng
    if rng.random() < 0.45:
        return ctx.faker.phone_number().strip()
    return numerify(rng.choice(PHONE_PATTERNS[ctx.locale]), rng)


def mobile_international(ctx: SlotContext) -> str:
    patterns = [p for p in PHONE_PATTERNS[ctx.locale] if p.startswith("+")]
    return numerify(ctx.rng.choice(patterns), ctx.rng)


def _address_lines(ctx: SlotContext) -> list[str]:
    fk = ctx.faker
    if ctx.locale == "ja_JP":
        return [f"〒{fk.zipcode()}", fk.address().strip()]
    return [line.strip() for line in fk.address().split("\n") if line.strip()]


def address(ctx: SlotContext) -> str:
    return "\n".join(_address_lines(ctx))


def address_line(ctx: SlotContext) -> str:
    return ", ".join(_address_lines(ctx)) if ctx.locale != "ja_JP" else " ".join(_address_lines(ctx))


def street(ctx: SlotContext) -> str:
    if ctx.locale == "ja_JP":
        return ctx.faker.address().strip()
    return ctx.faker.street_address().strip()


# ------------------------------------------------------------------------------------------------- finance
def credit_card(ctx: SlotContext) -> str:
    number, rng = ctx.faker.credit_card_number(), ctx.rng
    sep = rng.choice(("", " ", " ", "-"))
    if not sep:
        return number
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(number), (4, 4, 4, 4))
    return _group(number, sizes, sep)


def iban(ctx: SlotContext) -> str:
    value = ctx.faker.iban()
    return _group(value, (4,) * 10, " ") if ctx.rng.random() < 0.5 else value


# ----------------------------------------------------------------------------------------------- misc PII
def ip_address(ctx: SlotContext, v6_share: float = 0.15) -> str:
    return ctx.faker.ipv6() if ctx.rng.random() < v6_share else ctx.faker.ipv4_public()


def date_of_birth(ctx: SlotContext) -> str:
    return format_date(random_date(ctx.rng, 1938, 2007), ctx.locale, ctx.rng)


def personal_url(ctx: SlotContext) -> str:
    p, rng = ctx.person(), ctx.rng
    host = rng.choice((f"{p.first_ascii}{p.last_ascii}", p.last_ascii, f"{p.first_ascii}-{p.last_ascii}"))
    tld = rng.choice(_TLDS[ctx.locale] + ("dev", "me", "io"))
    scheme = rng.choice(("https://", "https://www.", "", "http://"))
    return f"{scheme}{host}.{tld}{rng.choice(('', '', '/', '/about', '/blog'))}"


def social_url(ctx: SlotContext) -> str:
    p, rng, user = ctx.person(), ctx.rng, username(ctx)
    return rng.choice(
        (
            f"https://www.linkedin.com/in/{p.first_ascii}-{p.last_ascii}-{rng.randrange(16**6):06x}",
            f"https://github.com/{user}",
            f"https://x.com/{user}",
            f"https://www.instagram.com/{user}/",
            f"https://{user.replace('_', '-').replace('.', '-')}.github.io",
            f"https://mastodon.social/@{user}",
            f"linkedin.com/in/{p.first_ascii}{p.last_ascii}",
        )
    )


def _numbered(base: str, k: int) -> str:
    return base if k == 1 else f"{base}{k}"


def pii_slots() -> dict[str, tuple[str, SlotFn]]:
    """Slot name -> (label, generator) for every PII slot templates may use."""
    slots: dict[str, tuple[str, SlotFn]] = {}
    for k in (1, 2, 3):
        slots[_numbered("name", k)] = ("PERSON", lambda c, k=k: c.person(k).full)
        slots[_numbered("first", k)] = ("PERSON", lambda c, k=k: c.person(k).first)
        slots[_numbered("last", k)] = ("PERSON", lambda c, k=k: c.person(k).last)
        slots[_numbered("email", k)] = ("EMAIL", lambda c, k=k: email(c, k))
        slots[_numbered("work_email", k)] = ("EMAIL", lambda c, k=k: email(c, k, work=True))
        slots[_numbered("username", k)] = ("USERNAME", lambda c, k=k: username(c, k))
        slots[_numbered("phone", k)] = ("PHONE", phone)
        slots[_numbered("ip", k)] = ("IP_ADDRESS", ip_address)
        slots[_numbered("password", k)] = ("PASSWORD", lambda c: cred.human_password(c.rng))
    slots.update(
        {
            "mobile": ("PHONE", mobile_international),
            "address": ("ADDRESS", address),
            "address2": ("ADDRESS", address),
            "address_line": ("ADDRESS", address_line),
            "street": ("ADDRESS", street),
            "card": ("CREDIT_CARD", credit_card),
            "iban": ("IBAN", iban),
            "national_id": ("SSN", national_id),
            "ipv4": ("IP_ADDRESS", lambda c: c.faker.ipv4_public()),
            "ipv6": ("IP_ADDRESS", lambda c: c.faker.ipv6()),
            "dob": ("DATE_OF_BIRTH", date_of_birth),
            "dob2": ("DATE_OF_BIRTH", date_of_birth),
            "api_key": ("PASSWORD", lambda c: cred.api_key(c.rng)),
            "aws_key_id": ("PASSWORD", lambda c: cred.aws_access_key_id(c.rng)),
            "aws_secret": ("PASSWORD", lambda c: cred.aws_secret_key(c.rng)),
            "bearer": ("PASSWORD", lambda c: cred.bearer_token(c.rng)),
            "gh_token": ("PASSWORD", lambda c: cred.github_token(c.rng)),
            "slack_token": ("PASSWORD", lambda c: cred.slack_token(c.rng)),
            "secret": ("PASSWORD", lambda c: cred.generic_secret(c.rng)),
            "personal_url": ("URL", personal_url),
            "social_url": ("URL", social_url),
        }
    )
    return slots
