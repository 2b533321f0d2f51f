"""Request and response schemas (msgspec): strict, no unknown fields, documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

import msgspec

RedactMode = Literal["mask", "replace", "hash"]


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: str
    content: str


class DetectRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of `text` or `messages`."""

    text: str | None = None
    messages: list[Message] | None = None
    categories: list[str] | None = None  # only these categories in the response (default: all)
    redact: RedactMode | None = None
    return_scores: bool = False  # token-level detail is never returned; this adds each category's threshold
    thresholds: dict[str, float] | None = None  # per-category thresholds in (0, 1] for this request only


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: list[DetectRequest]


class SpanOut(msgspec.Struct):
    label: str
    start: int
    end: int
    score: float
    message: int | None = None  # index into `messages` (absent for a plain `text`)


class CategoryOut(msgspec.Struct, omit_defaults=True):
    score: float
    flagged: bool
    threshold: float | None = None


class MessageResult(msgspec.Struct, omit_defaults=True):
    index: int
    role: str
    categories: dict[str, CategoryOut]
    redacted: str | None = None


class DetectResponse(msgspec.Struct, omit_defaults=True):
    spans: list[SpanOut]
    categories: dict[str, CategoryOut]  # per request: the max over messages
    bundle: str
    version: str
    timing_ms: dict[str, float]
    redacted: str | None = None
    messages: list[MessageResult] | None = None


class BatchResponse(msgspec.Struct):
    items: list[DetectResponse]


class ErrorBody(msgspec.Struct):
    type: str
    message: str


class ErrorResponse(msgspec.Struct):
    error: ErrorBody
    request_id: str
