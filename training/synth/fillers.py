"""Slot generators for non-PII values: distractors for hard negatives and context for PII templates.

Everything here is deliberately *not* labelled: order/tracking/ticket numbers, versions, prices, event dates,
placeholder e-mails from documentation, product names, genres, regions, public figures, hashes and so on.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable

from probeguard.training.synth.context import SlotContext
from probeguard.training.synth.locales import format_date, numerify, random_date
from probeguard.training.synth.values import id_name
from probeguard.training.synth.wordlists import (
    ATHLETES,
    FICTIONAL,
    GENRES,
    HISTORICAL,
    LANGUAGES,
    PLACEHOLDER_EMAILS,
    PRODUCTS,
    PUBLIC_FIGURES,
    QUESTIONS,
    REGIONS,
    TOPICS,
)

SlotFn = Callable[[SlotContext], str]

_CURRENCY: dict[str, tuple[str, ...]] = {
    "en_US": ("${a}.{c}", "${a}", "USD {a}.{c}"),
    "en_GB": ("£{a}.{c}", "£{a}", "GBP {a}.{c}"),
    "ja_JP": ("¥{a}", "{a}円"),
}


def price(ctx: SlotContext) -> str:
    rng = ctx.rng
    amount, cents = rng.choice((rng.randint(1, 99), rng.randint(100, 2999))), rng.choice((0, 49, 95, 99, 50))
    if ctx.locale == "ja_JP":
        amount *= 100
    fmt = rng.choice(_CURRENCY.get(ctx.locale, ("{a},{c} €", "€{a}.{c}", "{a} EUR", "EUR {a},{c}")))
    return fmt.replace("{a}", f"{amount:,}" if ctx.locale == "ja_JP" else str(amount)).replace("{c}", f"{cents:02d}")


def version(ctx: SlotContext) -> str:
    rng = ctx.rng
    core = f"{rng.randint(0, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}"
    return rng.choice((f"v{core}", core, f"{core}-rc.{rng.randint(1, 5)}", f"{core}-beta", f"v{core}"))


def build_number(ctx: SlotContext) -> str:
    """IP-address-like dotted build numbers (e.g. Windows builds)."""
    rng = ctx.rng
    return f"{rng.randint(1, 10)}.0.{rng.randint(10000, 26000)}.{rng.randint(1, 4000)}"


def _alnum(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(k))


def order_number(ctx: SlotContext) -> str:
    rng = ctx.rng
    return rng.choice(
        (
            numerify("%##-#######-#######", rng),
            f"ORD-{rng.randint(2019, 2026)}-{numerify('######', rng)}",
            _alnum(rng, 8),
            numerify("#%########", rng),
            f"{rng.randint(100000, 9999999)}",
        )
    )


def tracking_number(ctx: SlotContext) -> str:
    rng = ctx.rng
    return rng.choice(
        (
            f"1Z{_alnum(rng, 6)}{numerify('##########', rng)}",
            numerify("JD01460000####%###", rng),
            f"{rng.choice(('LX', 'RR', 'CP'))}{numerify('#########', rng)}{rng.choice(('DE', 'FR', 'NL'))}",
            numerify("%### #### ####", rng),
        )
    )


def invoice_number(ctx: SlotContext) -> str:
    rng = ctx.rng
    return rng.choice(
        (
            f"INV-{rng.randint(2020, 2026)}-{rng.randint(1, 9999):05d}",
            f"RE-{rng.randint(10000, 99999)}",
            f"F{rng.randint(2020, 2026)}/{rng.randint(1, 9999):04d}",
            numerify("%#######", rng),
        )
    )


def ticket_number(ctx: SlotContext) -> str:
    rng = ctx.rng
    return rng.choice(
        (
            f"INC{rng.randint(1, 9999999):07d}",
            f"PROJ-{rng.randint(1, 9999)}",
            numerify("%#######", rng),
            numerify("%##-%###", rng),
            f"CS-{rng.randint(100000, 999999)}",
        )
    )


def part_number(ctx: SlotContext) -> str:
    """Phone-number-like article, part and serial numbers."""
    rng = ctx.rng
    return numerify(
        rng.choice(
            (
                "%###-###-##",
                "%##-###-####",
                "0%## ### ###",
                "%#.###.###",
                "(%##) ###-##-##",
                "%## ### ####",
                "+%#-###-####",
            )
        ),
        rng,
    )


def event_date(ctx: SlotContext) -> str:
    return format_date(random_date(ctx.rng, 2022, 2027), ctx.locale, ctx.rng)


def clock_time(ctx: SlotContext) -> str:
    rng = ctx.rng
    h, m = rng.randint(7, 19), rng.choice((0, 15, 30, 45))
    if ctx.locale not in ("en_US", "en_GB") or rng.random() < 0.4:
        return f"{h}:{m:02d}"
    return f"{h % 12 or 12}{':' + f'{m:02d}' if m else ''}{'pm' if h >= 12 else 'am'}"


def short_uuid(ctx: SlotContext) -> str:
    return str(uuid.UUID(int=ctx.rng.getrandbits(128), version=4))


def commit_sha(ctx: SlotContext) -> str:
    rng = ctx.rng
    return "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((7, 8, 40))))


def checksum(ctx: SlotContext) -> str:
    return "".join(ctx.rng.choice("0123456789abcdef") for _ in range(64))


def doc_ip(ctx: SlotContext) -> str:
    """Documentation / private-range addresses, used in docs-style negatives."""
    rng = ctx.rng
    return rng.choice(
        (
            f"192.0.2.{rng.randint(1, 254)}",
            f"198.51.100.{rng.randint(1, 254)}",
            f"203.0.113.{rng.randint(1, 254)}",
            "127.0.0.1",
            "0.0.0.0",
            f"10.0.0.{rng.randint(1, 20)}",
        )
    )


def iso_timestamp(ctx: SlotContext) -> str:
    rng = ctx.rng
    day = random_date(rng, 2023, 2026)
    return f"{day.isoformat()}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def log_timestamp(ctx: SlotContext) -> str:
    rng = ctx.rng
    day = random_date(rng, 2023, 2026)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[day.month - 1]
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return f"{day.day:02d}/{month}/{day.year}:{clock} +0000"


def _pick(options: tuple[str, ...]) -> SlotFn:
    return lambda c: c.rng.choice(options)


def filler_slots() -> dict[str, SlotFn]:
    """Slot name -> generator for every unlabelled slot templates may use."""
    slots: dict[str, SlotFn] = {
        "id_name": id_name,
        "company": lambda c: c.faker.company(),
        "job": lambda c: c.faker.job(),
        "city": lambda c: c.faker.city(),
        "price": price,
        "price2": price,
        "version": version,
        "version2": version,
        "build": build_number,
        "order_no": order_number,
        "tracking": tracking_number,
        "invoice": invoice_number,
        "ticket": ticket_number,
        "part_no": part_number,
        "part_no2": part_number,
        "date_event": event_date,
        "date_event2": event_date,
        "time": clock_time,
        "uuid": short_uuid,
        "sha": commit_sha,
        "checksum": checksum,
        "doc_ip": doc_ip,
        "year": lambda c: str(c.rng.randint(1950, 2025)),
        "count": lambda c: str(c.rng.randint(2, 48)),
        "percent": lambda c: f"{c.rng.randint(1, 99)}%",
        "last4": lambda c: numerify("####", c.rng),
        "expiry": lambda c: f"{c.rng.randint(1, 12):02d}/{c.rng.randint(25, 31)}",
        "port": lambda c: str(c.rng.choice((80, 443, 5432, 3306, 6379, 8080, 8443, 27017))),
        "domain": lambda c: c.faker.domain_name(),
        "iso_ts": iso_timestamp,
        "log_ts": log_timestamp,
        "date_iso": lambda c: random_date(c.rng, 2020, 2026).isoformat(),
        "pid": lambda c: str(c.rng.randint(300, 65000)),
        "public_figure": _pick(PUBLIC_FIGURES),
        "public_figure2": _pick(PUBLIC_FIGURES),
        "athlete": _pick(ATHLETES),
        "historical": _pick(HISTORICAL),
        "fictional": _pick(FICTIONAL),
        "fictional2": _pick(FICTIONAL),
        "genre": _pick(GENRES),
        "genre2": _pick(GENRES),
        "region": _pick(REGIONS),
        "product": _pick(PRODUCTS),
        "product2": _pick(PRODUCTS),
        "topic": _pick(TOPICS),
        "question": _pick(QUESTIONS),
        "placeholder_email": _pick(PLACEHOLDER_EMAILS),
        "prog_lang": _pick(LANGUAGES),
        "prog_lang2": _pick(LANGUAGES),
    }
    return slots
