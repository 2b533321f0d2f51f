"""Generators for passwords, API keys, tokens and other secrets (all labelled PASSWORD).

The formats imitate well-known credential shapes (AWS, GitHub, Slack, JWT, ...) but every character is drawn from
the example's seeded RNG, so none of them is a real credential.
"""

from __future__ import annotations

import base64
import random
import string

_ALNUM = string.ascii_letters + string.digits
_B64 = _ALNUM + "+/"
_B64URL = _ALNUM + "-_"
_HEX = "0123456789abcdef"
WORDS = (
    "sunflower",
    "dragon",
    "monkey",
    "autumn",
    "coffee",
    "rainbow",
    "falcon",
    "pirate",
    "tiger",
    "winter",
    "bluebird",
    "mango",
    "rocket",
    "shadow",
    "marble",
    "cactus",
    "zebra",
    "velvet",
    "thunder",
    "pepper",
)
_SYMBOLS = "!@#$%&*?_-."
# Weak passwords people really use: a lowercase word or keyboard walk with a few digits ("letmein", "qwerty123").
WEAK_STEMS = (
    "letmein",
    "qwerty",
    "iloveyou",
    "trustno",
    "welcome",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "starwars",
    "superman",
    "passw0rd",
    "admin",
    "abc",
    "master",
    "charlie",
    "asdfgh",
    "freedom",
    "whatever",
    "batman",
    "snoopy",
    "pokemon",
    "changeme",
    "secret",
)


def _rand(rng: random.Random, alphabet: str, k: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(k))


def human_password(rng: random.Random) -> str:
    """A password a person would type: random-looking, a word + digits + symbol pattern, or a weak word + digits."""
    kind = rng.randrange(5)
    if kind == 4:
        stem = rng.choice(WEAK_STEMS + WORDS)
        return stem + rng.choice(("", str(rng.randint(0, 9)), str(rng.randint(10, 99)), "123", "1234", "2024"))
    if kind == 0:
        pools = string.ascii_lowercase + string.ascii_uppercase + string.digits + _SYMBOLS
        core = [rng.choice(string.ascii_uppercase), rng.choice(string.digits), rng.choice(_SYMBOLS)]
        core += [rng.choice(pools) for _ in range(rng.randint(6, 14))]
        rng.shuffle(core)
        return "".join(core)
    word = rng.choice(WORDS)
    if kind == 1:
        return f"{word.capitalize()}{rng.randint(1, 2025)}{rng.choice(_SYMBOLS)}"
    if kind == 2:
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("s", "$")
        return f"{leet}{rng.choice(_SYMBOLS)}{rng.randint(10, 99)}"
    return f"{word}{rng.choice(WORDS).capitalize()}{rng.randint(1, 999)}"


def aws_access_key_id(rng: random.Random) -> str:
    return "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16)


def aws_secret_key(rng: random.Random) -> str:
    return _rand(rng, _B64, 40)


def github_token(rng: random.Random) -> str:
    return rng.choice(("ghp_", "gho_", "github_pat_")) + _rand(rng, _ALNUM, 36)


def slack_token(rng: random.Random) -> str:
    prefix = rng.choice(("xoxb", "xoxp"))
    return f"{prefix}-{_rand(rng, string.digits, 11)}-{_rand(rng, string.digits, 13)}-{_rand(rng, _ALNUM, 24)}"


def jwt_token(rng: random.Random) -> str:
    header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    sub, iat = rng.randint(1000, 99_999_999), rng.randint(1_600_000_000, 1_800_000_000)
    claims = f'{{"sub":"{sub}","iat":{iat}}}'
    body = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    return f"{header}.{body}.{_rand(rng, _B64URL, 43)}"


def api_key(rng: random.Random) -> str:
    """An API key in one of several vendor-like shapes."""
    kind = rng.randrange(8)
    if kind == 0:
        return "sk-" + _rand(rng, _ALNUM, 48)
    if kind == 1:
        return rng.choice(("sk_live_", "rk_live_", "sk_test_")) + _rand(rng, _ALNUM, 24)
    if kind == 2:
        return "AIza" + _rand(rng, _B64URL, 35)
    if kind == 3:
        return _rand(rng, _HEX, rng.choice((32, 40, 64)))
    if kind == 4:
        return "glpat-" + _rand(rng, _B64URL, 20)
    if kind == 5:
        return f"SG.{_rand(rng, _B64URL, 22)}.{_rand(rng, _B64URL, 43)}"
    if kind == 6:
        return github_token(rng)
    return slack_token(rng)


def bearer_token(rng: random.Random) -> str:
    """A bearer token: a JWT or an opaque random string."""
    if rng.random() < 0.5:
        return jwt_token(rng)
    return _rand(rng, _B64URL, rng.choice((32, 40, 64)))


def generic_secret(rng: random.Random) -> str:
    """A webhook / signing / session secret."""
    kind = rng.randrange(3)
    if kind == 0:
        return _rand(rng, _HEX, 64)
    if kind == 1:
        return base64.b64encode(bytes(rng.randrange(256) for _ in range(32))).decode()
    return "whsec_" + _rand(rng, _ALNUM, 32)
