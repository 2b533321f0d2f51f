"""The sidecar's state: one object the lifespan, the middleware and the routes share (no app <-> routes cycle)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from probeguard.detector import Detector, Redactor
from probeguard.detector.trace import LayerTracer
from probeguard.service.batcher import AdmissionHook, MicroBatcher
from probeguard.service.jobs import BatchStats
from probeguard.service.metrics import Metrics
from probeguard.service.settings import ServiceSettings

log = logging.getLogger("probeguard.service")
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
    tracer: LayerTracer | None = None  # the console's layer trace (full torch host); None when off or unavailable


def publish_bundle_info(state: ServiceState) -> None:
    info = state.detector.info()
    state.metrics.bundle.info({"name": info["bundle"]["name"], "version": info["bundle"]["version"],
                               "host": info["host"]["id"], "provider": info["backend"]})  # fmt: skip
    # Every label and category the bundle can report starts at 0, so a dashboard panel is never empty on a healthy
    # service and a rate() sees the first detection (label values are the bundle's names, never user text).
    for label in state.detector.plan.token_labels:
        state.metrics.detections.labels(label=label)
    for category in state.detector.plan.categories:
        state.metrics.flags.labels(category=category)


def record_admission(state: ServiceState) -> AdmissionHook:
    def record(size: str, admitted: bool, bound_s: float) -> None:
        state.metrics.admissions.labels(size_class=size, outcome="admitted" if admitted else "refused").inc()
        if admitted:
            state.metrics.answer_bound_seconds.labels(size_class=size).observe(bound_s)

    return record


def record_batch(state: ServiceState) -> Callable[[BatchStats], None]:
    def record(stats: BatchStats) -> None:
        m = state.metrics
        m.inference_seconds.observe(stats.inference_s)
        m.batch_items.observe(stats.items)
        m.batch_tokens.observe(stats.tokens)
        m.tokens.inc(stats.tokens)
        for wait in stats.waits_s:
            m.queue_wait_seconds.observe(wait)
        if state.batcher is not None and state.batcher.meter.tokens_per_s is not None:
            m.backend_rate.set(state.batcher.meter.tokens_per_s)

    return record


async def calibrate_detector(state: ServiceState, detector: Detector) -> None:
    """Fit `detector`'s pass cost on this box (off the loop) when the settings ask for it; a batcher with no measured
    rate yet starts from the calibration's. Logs numbers only."""
    if not state.settings.calibrate_cost:
        return
    fit = await asyncio.get_running_loop().run_in_executor(None, detector.calibrate_pass_cost)
    meter = state.batcher.meter if state.batcher is not None else None
    if meter is not None and meter.tokens_per_s is None:
        meter.seed(fit.work, fit.seconds)
        state.metrics.backend_rate.set(meter.tokens_per_s or 0.0)
    log.info("pass cost calibrated", extra={"pass_cost": fit.to_dict()})


async def reload_detector(state: ServiceState, bundle: Path | None) -> Detector:
    """Load a new detector off the loop and swap it in atomically; on failure the old one keeps serving."""
    async with state.reload_lock:
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(None, state.loader, bundle)
        await loop.run_in_executor(None, new.detect, [WARMUP_TEXT])
        await calibrate_detector(state, new)  # alongside the serving batches: timings a little high under load
        tracer = await loop.run_in_executor(None, load_tracer, new) if state.settings.console else None
        state.detector, state.tracer = new, tracer
        publish_bundle_info(state)
        log.info("bundle reloaded", extra={"bundle": new.bundle.manifest.name, "version": new.bundle.manifest.version})
        return new


def load_tracer(detector: Detector) -> LayerTracer | None:
    """The console's full torch host for the layer trace (~1 GB at Gemma 3 270M) when the bundle has trace probes;
    None (logged) when it has none. A host that cannot be loaded fails startup or the reload (HostError)."""
    probes = detector.bundle.trace
    if probes is None:
        log.warning("console: the bundle has no trace probes; /v1/trace answers 409")
        return None
    s = detector.settings
    return LayerTracer.load(
        detector.host.path, detector.tokenizer, probes, s.window_tokens, s.window_overlap, s.num_threads
    )
