"""Service settings from `PROBEGUARD_*` environment variables; each field notes its trade-off."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from probeguard.detector.errors import ConfigError
from probeguard.detector.typed_config import read_env

log = logging.getLogger("probeguard.service")
# Old name of PROBEGUARD_BIND_HOST; "host" means the host model everywhere else, so it is read with a warning only.
DEPRECATED_BIND_VARIABLE = "PROBEGUARD_HOST"


@dataclass(frozen=True)
class ServiceSettings:
    # Address to listen on. Loopback by default: a sidecar should not listen on a public interface unless told to.
    bind_host: str = "127.0.0.1"
    # TCP port to listen on.
    port: int = 8000
    # Extra wait for company before an idle batcher runs; 0 = no added latency. Under load batches still form:
    # requests that arrive while a batch runs are taken together by the next one.
    batch_wait_ms: float = 0.0
    # Longest estimated queue wait (work ahead / measured tokens per second) a request is admitted with; over it the
    # answer is 429 at once, with a computed Retry-After. Lower keeps accepted requests fast and refuses more under
    # load (a chat backend can retry or fail open); higher accepts more requests that then wait longer.
    latency_budget_ms: float = 500.0
    # Longest estimated time to answer (that wait plus the request's own compute at the measured rate) a request is
    # admitted with while others are queued or running; alone, any request runs. Lower keeps accepted p99 down by
    # refusing the longest texts first under load (they can starve while it lasts); higher admits them to answer later.
    answer_deadline_ms: float = 1000.0
    # Time a few rows at startup and reload (~2-3 s on CPU, Gemma 3 270M at K = 8) and fit the pass cost model to this
    # box and graph (detector.calibrate), which also gives the first requests a measured rate; off = the backend's fixed
    # constants (fitted on one box's fp32 graph; a guess on GPU) and no wait estimate until the first batch has run.
    calibrate_cost: bool = True
    # Hard bound on tokens waiting in the queue (at least PROBEGUARD_BATCH_TOKENS, the work one forward pass takes):
    # bounds memory whatever the measured rate says; over it the answer is 429.
    queue_tokens: int = 16384
    # A request still queued after this many seconds is answered 503 instead of run: its client has likely gone.
    queue_timeout_s: float = 10.0
    # Largest request body in bytes, enforced before parsing.
    max_body_bytes: int = 1_048_576
    # Messages per /v1/detect request; bounds the work one request can ask for (413 over it).
    max_messages: int = 64
    # Items per /v1/detect/batch request (413 over it).
    max_batch_items: int = 64
    # Bearer token for /v1 and /admin routes; empty = no auth (then /admin is disabled).
    auth_token: str = ""
    # Seconds a shutdown waits for in-flight requests before giving up.
    drain_seconds: float = 20.0
    # Serve the operator console at /console and the routes it calls (/v1/trace, /v1/features; behind the bearer token
    # when one is set). Loads the full torch host for the layer trace (~1 GB more memory at Gemma 3 270M) when the
    # bundle has trace probes. Off: none of these routes exist.
    console: bool = False

    def __post_init__(self) -> None:
        for name in ("port", "queue_tokens", "max_body_bytes", "max_messages", "max_batch_items"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"setting {name} must be a positive integer, got {value!r}")
        if not 0 < self.queue_timeout_s <= 3600:
            raise ConfigError(f"setting queue_timeout_s must be in (0, 3600], got {self.queue_timeout_s}")
        if not 0 < self.latency_budget_ms <= 60_000:
            raise ConfigError(f"setting latency_budget_ms must be in (0, 60000], got {self.latency_budget_ms}")
        if not self.latency_budget_ms <= self.answer_deadline_ms <= 60_000:
            raise ConfigError(f"setting answer_deadline_ms must be in [latency_budget_ms, 60000], got "
                              f"{self.answer_deadline_ms}")  # fmt: skip
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(f"setting batch_wait_ms must be in [0, 1000], got {self.batch_wait_ms}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> ServiceSettings:
        source = os.environ if env is None else env
        values = read_env(cls, source)
        old = source.get(DEPRECATED_BIND_VARIABLE)
        if old is not None:
            log.warning(f"{DEPRECATED_BIND_VARIABLE} is deprecated; set PROBEGUARD_BIND_HOST")
            values.setdefault("bind_host", old)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
