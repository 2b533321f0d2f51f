"""The service's own error types, the one table from typed errors to HTTP status codes, and its handler.

Bodies are `{"error": {"type", "message"}, "request_id"}`. Messages come from the library's typed errors, which never
carry user text; anything unexpected is answered with a generic message (and logged without the request body).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from probeguard.detector.errors import (
    BundleError,
    ConfigError,
    EmptyInputError,
    HostError,
    InferenceError,
    InputTooLargeError,
    InvalidInputError,
    ProbeguardError,
)
from probeguard.detector.explanation import ExplainUnavailableError
from probeguard.detector.trace import TraceUnavailableError

log = logging.getLogger("probeguard.service")
REQUEST_ID: ContextVar[str] = ContextVar("probeguard_request_id", default="")  # set per request by the middleware
_QUOTED = re.compile(r"'[^']*'")  # schema messages may quote a submitted value: never echo it


# Why admission refused a request (the `reason` label of probeguard_refusals_total): it would be answered after its own
# bound, it would make an admitted request late, or the queue's token bound is full.
REFUSAL_REASONS = ("answer_deadline", "admitted_deadline", "queue_tokens")


class QueueFullError(ProbeguardError):
    """Admitting the request would break its own answer bound, an admitted request's, or the queue's memory bound:
    429 with Retry-After."""

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(message)
        self.retry_after_s = retry_after_s  # seconds until the work ahead is expected to fit the bound again
        self.reason = reason


class NotReadyError(ProbeguardError):
    """The service is starting: the bundle is loading or warming up (503; a readiness probe's expected answer)."""


class DrainingError(ProbeguardError):
    """The service is shutting down (503)."""


class QueueTimeoutError(DrainingError):
    """A request waited in the queue past its deadline; it is answered instead of run (503)."""


class RequestError(InvalidInputError):
    """A request that parses but is not meaningful (both text and messages, unknown category, ...)."""


class TooManyItemsError(InputTooLargeError):
    """Too many messages or batch items in one request."""


class AdminDisabledError(ConfigError):
    """Admin routes need an auth token to be configured."""


class ReloadFailedError(ConfigError):
    """A reload was refused; the previous bundle keeps serving."""


# type -> (status, public type name). Order matters: the first matching class wins.
ERROR_TABLE: list[tuple[type[BaseException], int]] = [
    (UnicodeDecodeError, 400),  # a body that is not UTF-8 fails while Litestar decodes it
    (RecursionError, 400),  # absurdly nested JSON
    (NotAuthorizedException, 401),
    (AdminDisabledError, 403),
    (TooManyItemsError, 413),
    (InputTooLargeError, 413),
    (EmptyInputError, 422),
    (RequestError, 422),
    (InvalidInputError, 422),
    (ValidationException, 422),
    (QueueFullError, 429),
    (ReloadFailedError, 409),
    (ExplainUnavailableError, 409),  # explain asked of a bundle without an SAE: the request is fine, the bundle can't
    (TraceUnavailableError, 409),  # the console's trace asked of a bundle without trace probes
    (NotReadyError, 503),
    (DrainingError, 503),
    (InferenceError, 503),
    (BundleError, 503),
    (HostError, 503),
]


def status_for(exc: BaseException) -> int:
    for kind, status in ERROR_TABLE:
        if isinstance(exc, kind):
            return status
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def body_not_utf8(exc: BaseException) -> bool:
    """A body that is not UTF-8: Python's UnicodeDecodeError, or (msgspec >= 0.23, which checks UTF-8 while decoding)
    a msgspec.DecodeError naming UTF-8 somewhere in the chain of causes Litestar wraps it in (ClientException)."""
    seen: BaseException | None = exc
    for _ in range(8):  # Litestar wraps twice; the bound keeps a cyclic chain finite
        if seen is None:
            return False
        if isinstance(seen, UnicodeDecodeError) or (isinstance(seen, msgspec.DecodeError) and "UTF-8" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _public_message(exc: BaseException, status: int) -> str:
    if isinstance(exc, NotAuthorizedException):
        return "unauthorized"
    if body_not_utf8(exc):
        return "request body is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "request body is nested too deeply"
    if isinstance(exc, ValidationException):
        details = exc.extra if isinstance(exc.extra, list) else []
        parts = [_QUOTED.sub("'…'", f"{d.get('message', '')} at {d.get('key', '?')}") for d in details
                 if isinstance(d, dict)]  # fmt: skip
        return "request body does not match the schema" + (": " + "; ".join(parts[:5]) if parts else "")
    if isinstance(exc, HTTPException):
        return exc.detail if status < 500 else "internal error"
    if status == 500:
        return "internal error"
    return str(exc)


def error_response(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    request_id = REQUEST_ID.get()
    kind = type(exc).__name__
    state = request.app.state
    if hasattr(state, "metrics"):
        state.metrics.errors.labels(type=kind).inc()
    if isinstance(exc, NotReadyError | DrainingError) and not isinstance(exc, QueueTimeoutError):
        # a starting or draining service answers 503 by design (probes poll it): a state, not a failure
        log.info("service unavailable", extra={"request_id": request_id, "error_type": kind, "status": status})
    elif status >= 500:
        log.error("request failed", extra={"request_id": request_id, "error_type": kind, "status": status})
    headers = {"x-request-id": request_id}
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)  # e.g. Allow on 405
    if isinstance(exc, QueueFullError):
        headers["retry-after"] = str(exc.retry_after_s)
        if hasattr(state, "metrics"):
            state.metrics.refusals.labels(reason=exc.reason).inc()
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    body = {"error": {"type": kind, "message": _public_message(exc, status)}, "request_id": request_id}
    return Response(content=body, status_code=status, headers=headers, media_type="application/json")
