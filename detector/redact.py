"""redaction: replace detected spans in a text (mask, <LABEL> tags, or keyed hashes)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Literal

from probeguard.detector.errors import ConfigError
from probeguard.detector.spans import Span

RedactMode = Literal["mask", "replace", "hash"]
REDACT_MODES: tuple[str, ...] = ("mask", "replace", "hash")


class Redactor:
    """`mask`: every character becomes `*` (length kept); `replace`: `<EMAIL>`; `hash`: `<EMAIL:1a2b3c4d5e>`.

    Hashes are HMAC-SHA256 under a key: the same value maps to the same tag (joins across messages work) but a
    phone number cannot be recovered by hashing every phone number. Without a key, a random per-process key is used.
    """

    def __init__(self, key: bytes | None = None, mask_char: str = "*") -> None:
        if len(mask_char) != 1:
            raise ConfigError("mask_char must be a single character")
        self._key = key if key is not None else secrets.token_bytes(32)
        self._mask_char = mask_char

    def tag(self, span: Span, value: str, mode: str) -> str:
        if mode == "mask":
            return self._mask_char * len(value)
        if mode == "replace":
            return f"<{span.label}>"
        if mode == "hash":
            digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
            return f"<{span.label}:{digest[:10]}>"
        raise ConfigError(f"redaction mode must be one of {list(REDACT_MODES)}, got {mode!r}")

    def redact(self, text: str, spans: Sequence[Span], mode: str) -> str:
        pieces: list[str] = []
        cursor = 0
        for span in sorted(spans, key=lambda s: s.start):
            if span.start < cursor or span.end > len(text):
                raise ConfigError("spans overlap or fall outside the text")
            pieces.append(text[cursor : span.start])
            pieces.append(self.tag(span, text[span.start : span.end], mode))
            cursor = span.end
        pieces.append(text[cursor:])
        return "".join(pieces)
