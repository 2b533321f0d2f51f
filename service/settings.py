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
# Settings that were removed, and what replaced them: set, they fail startup rather than be silently ignored.
REMOVED_VARIABLES = {
    "PROBEGUARD_ANSWER_DEADLINE_MS": "a request's bound is now PROBEGUARD_LATENCY_BUDGET_MS plus "
    "PROBEGUARD_ANSWER_SLOWDOWN times its own compute (a fixed deadline refused the longest texts first)",
}


@dataclass(frozen=True)
class ServiceSettings:
    # Address to listen on. Loopback by default: a sidecar should not listen on a public interface unless told to.
    bind_host: str = "127.0.0.1"
    # TCP port to listen on.
    port: int = 8000
    # Extra wait for company before an idle batcher runs; 0 = no added latency. Under load batches still form:
    # requests that arrive while a batch runs are taken together by the next one.
    batch_wait_ms: float = 0.0
    # The wait every request's answer bound allows beside its own compute (see answer_slowdown): a request that could
    # not be answered within its bound is refused at once (429, with a computed Retry-After). Lower keeps accepted
    # requests fast and refuses more under load (a chat backend can retry or fail open); higher accepts more requests
    # that then wait longer. One batch lasts at most half of it.
    latency_budget_ms: float = 500.0
    # A request's answer bound is the latency budget plus this many times its own compute at the measured rate (0.55 s
    # for a short message, ~2 s for a 512-token text on one CPU thread); a document (over four latency budgets of
    # work) may also wait for the bulk lane up to twice that (~160 s for 20k tokens here). A request is admitted only
    # if it and every admitted one can still meet their bounds, so a long request competes on equal terms with short
    # ones; a document gets 1 / this share of the service while short requests keep it busy. Higher gives long
    # requests more slack (slower answers) and short ones more of the service.
    answer_slowdown: float = 2.0
    # Time a few rows at startup and reload (~2-3 s on CPU, Gemma 3 270M at K = 8) and fit the pass cost model to this
    # box and graph (detector.calibrate), which also gives the first requests a measured rate; off = the backend's fixed
    # constants (fitted on one box's fp32 graph; a guess on GPU) and no wait estimate until the first batch has run.
    calibrate_cost: bool = True
    # Hard bound on tokens admitted and not yet answered: bounds memory whatever the measured rate says; over it the
    # answer is 429. The default holds a full 1 MiB body of text (~250k tokens) with room to spare, so no single request
    # is refused by it for its size on an idle service.
    queue_tokens: int = 524288
    # A request not answered this many seconds after its bound is answered 503 instead of run further: its client has
    # likely gone (the backend slowed far below the measured rate).
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
        if not 1.0 <= self.answer_slowdown <= 100.0:
            raise ConfigError(f"setting answer_slowdown must be in [1, 100], got {self.answer_slowdown}")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(f"setting batch_wait_ms must be in [0, 1000], got {self.batch_wait_ms}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> ServiceSettings:
        source = os.environ if env is None else env
        for name, why in REMOVED_VARIABLES.items():
            if name in source:
                raise ConfigError(f"{name} was removed: {why}")
        values = read_env(cls, source)
        old = source.get(DEPRECATED_BIND_VARIABLE)
        if old is not None:
            log.warning(f"{DEPRECATED_BIND_VARIABLE} is deprecated; set PROBEGUARD_BIND_HOST")
            values.setdefault("bind_host", old)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
