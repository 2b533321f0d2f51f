"""`probeguard serve`: load (and if needed build) everything first, fail loudly, then serve with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.paths import BUNDLE_HELP, default_bundle_path
from probeguard.service.settings import ServiceSettings

log = logging.getLogger("probeguard.service")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument(
        "--host",
        dest="bind_host",
        metavar="ADDRESS",
        help="address to listen on (default: $PROBEGUARD_BIND_HOST or 127.0.0.1)",
    )
    p.add_argument("--bind", dest="bind_host", help=argparse.SUPPRESS)  # the earlier spelling of --host
    p.add_argument("--port", type=int, help="port (default: $PROBEGUARD_PORT or 8000)")
    p.add_argument("--backend", choices=("onnx", "torch"), help="default: $PROBEGUARD_BACKEND or onnx")
    p.add_argument("--threads", type=int, help="inference threads (default: $PROBEGUARD_NUM_THREADS or 1)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from probeguard.service.app import create_app
    from probeguard.service.logs import configure_json_logging

    configure_json_logging()
    settings = ServiceSettings.from_env(bind_host=args.bind_host, port=args.port)
    det_settings = DetectorSettings.from_env(backend=args.backend, num_threads=args.threads)

    def loader(path: Path | None) -> Detector:
        return Detector.load(path or default_bundle_path(args.bundle, det_settings), det_settings)

    detector = loader(None)  # a bad bundle, host or cache stops here with a clear error and exit code 2
    app = create_app(settings, detector, loader)
    log.info("serving", extra={"host": settings.bind_host, "port": settings.port, "backend": detector.backend.name})
    config = uvicorn.Config(app, host=settings.bind_host, port=settings.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=int(settings.drain_seconds))  # fmt: skip
    _server_class()(config).run()
    return 0


def _server_class() -> type:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown (exit status -15); here a completed drain exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return DrainingServer
