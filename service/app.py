"""The Litestar sidecar: lifespan-loaded detector, micro-batcher, error table, metrics, JSON logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from probeguard.detector import ConfigError, Detector
from probeguard.service.batcher import MicroBatcher
from probeguard.service.errors import REQUEST_ID, error_response
from probeguard.service.metrics import Metrics
from probeguard.service.routes import ROUTES
from probeguard.service.settings import ServiceSettings
from probeguard.service.state import (
    WARMUP_TEXT,
    ServiceState,
    calibrate_detector,
    load_tracer,
    publish_bundle_info,
    record_admission,
    record_batch,
    reload_detector,
)

log = logging.getLogger("probeguard.service")
KNOWN_ROUTES = (
    "/v1/detect",
    "/v1/detect/batch",
    "/v1/trace",
    "/v1/features",
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin/reload",
    "/schema",
    "/console",
)


def _lifespan(state: ServiceState):
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        s = state.settings
        state.batcher = MicroBatcher(s.batch_wait_ms / 1000, s.queue_tokens, record_batch(state), s.queue_timeout_s,
                                     s.latency_budget_ms / 1000, s.answer_slowdown,
                                     record_admission(state))  # fmt: skip
        state.batcher.start()
        publish_bundle_info(state)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not in the main thread (tests)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_sighup(state)))

        async def warm_up() -> None:
            await loop.run_in_executor(None, state.detector.detect, [WARMUP_TEXT])
            await calibrate_detector(state, state.detector)
            state.ready = True
            state.metrics.ready.set(1)
            log.info("ready", extra={"bundle": state.detector.bundle.manifest.name})

        warm = loop.create_task(warm_up())
        try:
            yield
        finally:
            state.ready = False
            state.metrics.ready.set(0)
            warm.cancel()
            drained = await state.batcher.drain(s.drain_seconds)
            log.info("shutdown", extra={"drained": drained})
            await state.batcher.close()
            state.tokenize_pool.shutdown(wait=False, cancel_futures=True)

    return lifespan


async def _sighup(state: ServiceState) -> None:
    try:
        await reload_detector(state, None)
    except Exception as exc:  # a failed reload keeps the old bundle; report the type only
        log.error("reload on SIGHUP failed; previous bundle kept", extra={"error_type": type(exc).__name__})


class RequestContext:
    """ASGI middleware: request id, access log (no bodies), request-latency metric by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        REQUEST_ID.set(request_id)
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers  # type: ignore[typeddict-unknown-key]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            prefix = next((p for p in ("/schema", "/console") if path.startswith(p)), None)
            route = path if path in KNOWN_ROUTES else (prefix or "other")
            elapsed = time.perf_counter() - started
            self.metrics.request_seconds.labels(route=route, status=str(status["code"])).observe(elapsed)
            log.info("request", extra={"request_id": request_id, "route": route, "status": status["code"],
                                       "duration_ms": round(elapsed * 1000, 2)})  # fmt: skip


def create_app(
    settings: ServiceSettings, detector: Detector, loader: Callable[[Path | None], Detector] | None = None
) -> Litestar:
    if settings.queue_tokens < detector.settings.batch_tokens:
        raise ConfigError(
            f"setting queue_tokens ({settings.queue_tokens}) must be at least the detector's batch_tokens "
            f"({detector.settings.batch_tokens}): one full batch must fit in the queue"
        )
    state = ServiceState(settings=settings, detector=detector, loader=loader or (lambda _: detector))
    routes = list(ROUTES)
    if settings.console:  # off by default: then /console, /v1/trace and /v1/features do not exist
        from probeguard.service.console import CONSOLE_ROUTES

        state.tracer = load_tracer(detector)
        routes += CONSOLE_ROUTES
    app = Litestar(
        route_handlers=routes,
        state=State({"service": state, "settings": settings, "metrics": state.metrics}),
        lifespan=[_lifespan(state)],
        exception_handlers={Exception: error_response},
        middleware=[lambda app: RequestContext(app, state.metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="probeguard", version="1", path="/schema"),
        debug=False,
        logging_config=None,  # logging is configured by `probeguard serve` (JSON, whitelisted fields)
    )
    return app
