"""The Litestar sidecar: lifespan-loaded detector, micro-batcher, error table, metrics, JSON logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from detector import Detector, Redactor
from service.batcher import BatchStats, MicroBatcher
from service.errors import REQUEST_ID, error_response
from service.metrics import Metrics
from service.settings import ServiceSettings

log = logging.getLogger("probeguard.service")
KNOWN_ROUTES = ("/v1/detect", "/v1/detect/batch", "/healthz", "/readyz", "/metrics", "/admin/reload", "/schema")
WARMUP_TEXT = "Warm-up: contact Jane Doe at jane@example.org."


@dataclass
class ServiceState:
    settings: ServiceSettings
    detector: Detector
    loader: Callable[[Path | None], Detector]  # builds a detector for a bundle path (reload)
    metrics: Metrics = field(default_factory=Metrics)
    redactor: Redactor = field(default_factory=Redactor)
    ready: bool = False
    batcher: MicroBatcher | None = None
    tokenize_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="probeguard-tokenize")
    )
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _bundle_info(state: ServiceState) -> None:
    info = state.detector.info()
    state.metrics.bundle.info({"name": info["bundle"]["name"], "version": info["bundle"]["version"],
                               "host": info["host"]["id"], "provider": info["backend"]})  # fmt: skip


def _record_batch(state: ServiceState) -> Callable[[BatchStats], None]:
    def record(stats: BatchStats) -> None:
        m = state.metrics
        m.inference_seconds.observe(stats.inference_s)
        m.batch_items.observe(stats.items)
        m.batch_tokens.observe(stats.tokens)
        m.tokens.inc(stats.tokens)
        for wait in stats.waits_s:
            m.queue_wait_seconds.observe(wait)

    return record


async def reload_detector(state: ServiceState, bundle: Path | None) -> Detector:
    """Load a new detector off the loop and swap it in atomically; on failure the old one keeps serving."""
    async with state.reload_lock:
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(None, state.loader, bundle)
        await loop.run_in_executor(None, new.detect, [WARMUP_TEXT])
        state.detector = new
        _bundle_info(state)
        log.info("bundle reloaded", extra={"bundle": new.bundle.manifest.name, "version": new.bundle.manifest.version})
        return new


def _lifespan(state: ServiceState):
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        s = state.settings
        state.batcher = MicroBatcher(s.batch_tokens, s.batch_wait_ms / 1000, s.queue_tokens, _record_batch(state),
                                     s.queue_timeout_s)  # fmt: skip
        state.batcher.start()
        _bundle_info(state)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not in the main thread (tests)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_sighup(state)))

        async def warm_up() -> None:
            await loop.run_in_executor(None, state.detector.detect, [WARMUP_TEXT])
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
            route = path if path in KNOWN_ROUTES else ("/schema" if path.startswith("/schema") else "other")
            elapsed = time.perf_counter() - started
            self.metrics.request_seconds.labels(route=route, status=str(status["code"])).observe(elapsed)
            log.info("request", extra={"request_id": request_id, "route": route, "status": status["code"],
                                       "duration_ms": round(elapsed * 1000, 2)})  # fmt: skip


def create_app(
    settings: ServiceSettings, detector: Detector, loader: Callable[[Path | None], Detector] | None = None
) -> Litestar:
    from service.routes import ROUTES

    state = ServiceState(settings=settings, detector=detector, loader=loader or (lambda _: detector))
    app = Litestar(
        route_handlers=ROUTES,
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
