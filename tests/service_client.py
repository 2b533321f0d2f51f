"""The sidecar under test: a tiny-host detector, an in-process client over it (Litestar test client with lifespan),
and a readiness wait, and a gate that holds the batcher busy; shared by the route and admission tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from litestar.testing import TestClient

from probeguard.detector import Detector, DetectorSettings
from probeguard.service.app import create_app
from probeguard.service.settings import ServiceSettings
from tests.bundles import make_bundle


def load_service_detector(tmp: Path, host: Path) -> Detector:
    make_bundle(tmp / "bundle", host, threshold=0.4)
    return Detector.load(
        tmp / "bundle", DetectorSettings(cache_dir=tmp / "cache", host_path=host, max_chars=2000, backend="torch")
    )


def service_client(detector: Detector, **kw) -> TestClient:
    kw.setdefault("calibrate_cost", False)  # plans stay the backend's fixed model; calibration has its own test
    settings = ServiceSettings(max_body_bytes=20_000, max_messages=4, max_batch_items=3, **kw)

    def loader(path: Path | None) -> Detector:
        return Detector.load(path or detector.bundle.path, detector.settings)

    return TestClient(create_app(settings, detector, loader))


def wait_ready(client: TestClient) -> None:
    for _ in range(200):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service never became ready")


@contextlib.contextmanager
def gated(detector: Detector) -> Iterator[tuple[threading.Event, threading.Event]]:
    """`detector.score_windows` blocks until the first yielded event is set (at most 5 s): a batcher stays busy on
    it. The second is set once a batch is blocked there (the batcher is running)."""
    gate, entered = threading.Event(), threading.Event()
    real = detector.score_windows

    def blocked(*args, **kwargs):
        entered.set()
        gate.wait(5)
        return real(*args, **kwargs)

    detector.score_windows = blocked  # type: ignore[method-assign]
    try:
        yield gate, entered
    finally:
        del detector.score_windows
