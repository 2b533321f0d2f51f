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
    # Add an `explanation` to every flagged category and every span (costs one explanation's work on the inference
    # thread; off by default: a request without it pays nothing). 409 when the served bundle has no SAE.
    explain: bool = False


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: list[DetectRequest]


class FeatureOut(msgspec.Struct):
    """One SAE feature of the bundle (`probeguard features ID` prints what the bundle knows about it)."""

    id: int
    contribution: float  # its part of the logit
    label: str | None  # its most frequent firing tokens (none when the bundle stores no labels)
    places: list[tuple[int, int]]  # character ranges where it contributed most (in the message it explains)


class TokenOut(msgspec.Struct):
    start: int
    end: int
    contribution: float


class RowOut(msgspec.Struct):
    """A labelled training row; its text only where its licence allows redistributing it (redacted)."""

    source: str
    role: str  # positive | lookalike | negative
    label: int
    row: int  # index into the source's train part
    licence: str
    snippet: str | None
    value: float  # supporting rows: the logit drop if it were left out (influence); nearest rows: the distance


class CategoryExplanationOut(msgspec.Struct):
    """Exact: bias + sum(features) + other_features + sae_offset + sae_error = logit, and sigmoid(logit) = score."""

    window: tuple[int, int]  # character range of the window that scored highest (a long text is windowed)
    logit: float
    bias: float
    features: list[FeatureOut]
    other_features: float
    sae_offset: float
    sae_error: float
    tokens: list[TokenOut]
    supporting_rows: list[RowOut]
    nearest_rows: list[RowOut]
    refit_score: float | None  # the influence layer's own score for this window (it approximates the served one)
    message: int | None = None  # which message it explains (for `messages`)


class SpanExplanationOut(msgspec.Struct):
    method: str  # the attribution method (first order: these parts do not sum to the logit)
    features: list[FeatureOut]
    sae_error: float
    validator: str | None  # what confirmed the span, for labels with a validator


class SpanOut(msgspec.Struct):
    label: str
    start: int
    end: int
    score: float
    message: int | None = None  # index into `messages` (absent for a plain `text`)
    explanation: SpanExplanationOut | msgspec.UnsetType = msgspec.UNSET  # only with `explain: true`


class CategoryOut(msgspec.Struct, omit_defaults=True):
    score: float
    flagged: bool
    threshold: float | None = None
    explanation: CategoryExplanationOut | msgspec.UnsetType = msgspec.UNSET  # `explain: true`, flagged only


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
    # tokenize, queue_and_inference, and answer_bound: the bound it was admitted with (latency budget + answer
    # slowdown x its own compute at the measured rate; a long text may take longer than a short one). Every window of
    # every text is scored before the answer: under load a request is refused (429), never scored in part.
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
