"""HTTP routes: /v1/detect, /v1/detect/batch, /healthz, /readyz, /metrics, /admin/reload (OpenAPI at /schema)."""

from __future__ import annotations

import asyncio
import hmac
import time

import msgspec
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probeguard.detector import Detection, Detector
from probeguard.detector.paths import bundle_by_name, is_bundle_name
from probeguard.service.errors import (
    AdminDisabledError,
    DrainingError,
    NotReadyError,
    ReloadFailedError,
    RequestError,
    TooManyItemsError,
)
from probeguard.service.schemas import (
    BatchRequest,
    BatchResponse,
    CategoryExplanationOut,
    CategoryOut,
    DetectRequest,
    DetectResponse,
    ErrorResponse,
    MessageResult,
    SpanExplanationOut,
    SpanOut,
)
from probeguard.service.state import ServiceState, reload_detector

_ERROR_EXAMPLE = [Example(value={"error": {"type": "EmptyInputError", "message": "text 0 is empty or whitespace only"},
                                 "request_id": "4f2a9c1e0b7d3a65"})]  # fmt: skip
_ERRORS = {code: ResponseSpec(ErrorResponse, description=what, examples=_ERROR_EXAMPLE) for code, what in [
    (400, "body is not UTF-8 or not JSON"), (401, "missing or wrong bearer token"),
    (409, "explain asked of a bundle that cannot explain (no SAE)"),
    (413, "body, text or message count over a limit"), (422, "invalid request or empty text"),
    (429, "overloaded; retry after Retry-After seconds"), (503, "not ready, draining, or inference failed"),
]}  # fmt: skip
_ADMIN_ERRORS = {
    **_ERRORS,
    403: ResponseSpec(ErrorResponse, description="admin disabled (no token configured)"),
    409: ResponseSpec(ErrorResponse, description="reload refused; previous bundle keeps serving"),
}


def service_of(connection: ASGIConnection) -> ServiceState:
    return connection.app.state["service"]


def _token_ok(connection: ASGIConnection, expected: str) -> bool:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode())


def require_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    expected = service_of(connection).settings.auth_token
    if expected and not _token_ok(connection, expected):
        raise NotAuthorizedException()


def require_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    expected = service_of(connection).settings.auth_token
    if not expected:
        raise AdminDisabledError("admin routes are disabled: set PROBEGUARD_AUTH_TOKEN to enable them")
    if not _token_ok(connection, expected):
        raise NotAuthorizedException()


def texts_of(req: DetectRequest, svc: ServiceState, detector: Detector) -> list[str]:
    if (req.text is None) == (req.messages is None):
        raise RequestError("give exactly one of 'text' or 'messages'")
    if req.messages is not None:
        if not req.messages:
            raise RequestError("'messages' is empty")
        if len(req.messages) > svc.settings.max_messages:
            raise TooManyItemsError(f"{len(req.messages)} messages; the limit is {svc.settings.max_messages}")
    unknown = sorted((set(req.categories or []) | set(req.thresholds or {})) - set(detector.plan.categories))
    if unknown:
        raise RequestError(f"unknown categories {unknown}; this bundle has {list(detector.plan.categories)}")
    bad = sorted(name for name, value in (req.thresholds or {}).items() if not 0.0 < value <= 1.0)  # NaN fails too
    if bad:
        raise RequestError(f"thresholds for {bad} must be in (0, 1]")
    if req.explain:
        _ = detector.explainer  # ExplainUnavailableError (409) now, before any work, when the bundle cannot explain
    return [req.text] if req.text is not None else [m.content for m in req.messages or []]


def _categories(
    d: Detection, wanted: set[str] | None, show_thresholds: bool, thresholds: dict[str, float], message: int | None
) -> dict[str, CategoryOut]:
    """`thresholds`: the request's own, replacing the served ones for those categories. A flagged category carries
    its explanation when the detection has one."""
    out = {}
    for name, c in d.categories.items():
        if wanted is None or name in wanted:
            threshold = thresholds.get(name, c.threshold)
            flagged = c.score >= threshold
            category = CategoryOut(round(c.score, 4), flagged, threshold if show_thresholds else None)
            if flagged and d.explanation is not None and name in d.explanation.categories:
                why = msgspec.convert(d.explanation.categories[name], CategoryExplanationOut, from_attributes=True)
                category.explanation = msgspec.structs.replace(why, message=message)
            out[name] = category
    return out


def _span_out(d: Detection, at: int, message: int | None) -> SpanOut:
    s = d.spans[at]
    out = SpanOut(s.label, s.start, s.end, round(s.score, 4), message)
    if d.explanation is not None:
        out.explanation = msgspec.convert(d.explanation.spans[at], SpanExplanationOut, from_attributes=True)
    return out


def _response(
    svc: ServiceState, detector: Detector, req: DetectRequest, texts: list[str], results: list[Detection],
    timing: dict[str, float],
) -> DetectResponse:  # fmt: skip
    wanted = set(req.categories) if req.categories is not None else None
    multi = req.messages is not None
    spans = [_span_out(r, j, i if multi else None) for i, r in enumerate(results) for j in range(len(r.spans))]
    per_message = [_categories(r, wanted, req.return_scores, req.thresholds or {}, i if multi else None)
                   for i, r in enumerate(results)]  # fmt: skip
    merged: dict[str, CategoryOut] = {}
    for cats in per_message:
        for name, c in cats.items():
            if name not in merged or c.score > merged[name].score:  # the top message's explanation comes along
                merged[name] = msgspec.structs.replace(
                    c, flagged=c.flagged or (name in merged and merged[name].flagged)
                )
    for span in spans:
        svc.metrics.detections.labels(label=span.label).inc()
    for name, c in merged.items():
        if c.flagged:
            svc.metrics.flags.labels(category=name).inc()
    redact = req.redact
    redacted = [
        svc.redactor.redact(t, r.spans, redact) if redact else None for t, r in zip(texts, results, strict=True)
    ]
    info = detector.bundle.manifest
    messages = None
    if multi:
        messages = [MessageResult(i, m.role, per_message[i], redacted[i]) for i, m in enumerate(req.messages or [])]
    return DetectResponse(spans=spans, categories=merged, bundle=info.name, version=info.version, timing_ms=timing,
                          redacted=None if multi else redacted[0], messages=messages)  # fmt: skip


async def _score(svc: ServiceState, requests: list[DetectRequest]) -> list[DetectResponse]:
    started = time.perf_counter()
    if svc.batcher is not None and svc.batcher.draining:
        raise DrainingError("the service is shutting down")
    if not svc.ready or svc.batcher is None:
        raise NotReadyError("the service is starting")
    detector = svc.detector
    per_request = [texts_of(r, svc, detector) for r in requests]
    texts = [t for group in per_request for t in group]
    svc.metrics.estimated_wait_seconds.observe(svc.batcher.estimated_wait_s())
    loop = asyncio.get_running_loop()
    encoded = await loop.run_in_executor(svc.tokenize_pool, detector.encode, texts)
    queued = time.perf_counter()
    explain = [r.explain for r, group in zip(requests, per_request, strict=True) for _ in group]
    svc.metrics.explained.inc(sum(explain))
    scored = await svc.batcher.submit(detector, texts, encoded, explain, arrived=started)
    results = scored.detections
    done = time.perf_counter()
    timing = {"tokenize": round((queued - started) * 1000, 3), "queue_and_inference": round((done - queued) * 1000, 3),
              "answer_bound": round(scored.bound_s * 1000, 3)}  # fmt: skip
    out, at = [], 0
    for req, group in zip(requests, per_request, strict=True):
        out.append(_response(svc, detector, req, group, results[at : at + len(group)], timing))
        at += len(group)
    return out


@post("/v1/detect", guards=[require_token], status_code=200, summary="Detect PII spans and unsafe categories",
      responses=_ERRORS)  # fmt: skip
async def detect(data: JSONBody[DetectRequest], request: Request) -> DetectResponse:
    (response,) = await _score(service_of(request), [data])
    return response


@post("/v1/detect/batch", guards=[require_token], status_code=200, summary="Detect for many items in one call",
      responses=_ERRORS)  # fmt: skip
async def detect_batch(data: JSONBody[BatchRequest], request: Request) -> BatchResponse:
    svc = service_of(request)
    if not data.items:
        raise RequestError("'items' is empty")
    if len(data.items) > svc.settings.max_batch_items:
        raise TooManyItemsError(f"{len(data.items)} items; the limit is {svc.settings.max_batch_items}")
    return BatchResponse(items=await _score(svc, data.items))


@get("/healthz", summary="Alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Bundle loaded and warmed up (503 until then, and while draining)",
     responses={503: ResponseSpec(ErrorResponse, description="not ready or draining")})  # fmt: skip
async def readyz(request: Request) -> dict[str, str]:
    svc = service_of(request)
    if svc.batcher is not None and svc.batcher.draining:
        raise DrainingError("draining")
    if not svc.ready:
        raise NotReadyError("starting")
    m = svc.detector.bundle.manifest
    return {"status": "ready", "bundle": m.name, "version": m.version, "backend": svc.detector.backend.name}


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    svc = service_of(request)
    if svc.batcher is not None:
        svc.metrics.queue_depth.set(svc.batcher.depth_tokens)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class ReloadRequest(msgspec.Struct, forbid_unknown_fields=True):
    # "<name>/<version>" (or "<name>": its newest) in PROBEGUARD_MODELS_DIR, then the shipped bundles; null or absent
    # ({}) = the configured bundle. Never a path: the admin API cannot name a folder outside those.
    bundle: str | None = None


@post("/admin/reload", guards=[require_admin], status_code=200, summary="Swap to a new bundle atomically",
      responses=_ADMIN_ERRORS)  # fmt: skip
async def admin_reload(request: Request, data: JSONBody[ReloadRequest]) -> dict[str, str]:
    svc = service_of(request)
    if data.bundle is not None and not is_bundle_name(data.bundle):
        raise RequestError("bundle must be '<name>/<version>' or '<name>' of a bundle in the models folders")
    try:  # a well-formed name that names no bundle fails like any other reload: 409, the old bundle keeps serving
        path = bundle_by_name(data.bundle, svc.detector.settings.models_dir) if data.bundle is not None else None
        new = await reload_detector(svc, path)
    except Exception as exc:  # any failure keeps the old bundle; the type (never a path's content) is reported
        raise ReloadFailedError(
            f"reload failed ({type(exc).__name__}: {exc}); the previous bundle keeps serving"
        ) from exc
    return {"status": "reloaded", "bundle": new.bundle.manifest.name, "version": new.bundle.manifest.version}


ROUTES = [detect, detect_batch, healthz, readyz, metrics, admin_reload]
