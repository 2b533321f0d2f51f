"""Prometheus metrics (prefix probeguard_) with explicit buckets. Labels are route templates, status codes, label and
category names, error types and bundle identity: never user text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from probeguard.service.admission import SIZE_CLASS_NAMES
from probeguard.service.errors import REFUSAL_REASONS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Answer bounds grow with a request's size (service.admission): ~0.5 s for a chat message, minutes for 20k tokens.
BOUND_BUCKETS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
BATCH_ITEMS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_TOKENS_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram("probeguard_request_duration_seconds", "HTTP request latency",
                                         ["route", "status"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.inference_seconds = Histogram("probeguard_inference_duration_seconds", "Backend time per batch",
                                           buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.queue_wait_seconds = Histogram("probeguard_queue_wait_seconds", "Time a request waited for its batch",
                                            buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.batch_items = Histogram("probeguard_batch_size", "Requests per batch", buckets=BATCH_ITEMS_BUCKETS,
                                     registry=r)  # fmt: skip
        self.batch_tokens = Histogram("probeguard_batch_tokens", "Tokens per batch", buckets=BATCH_TOKENS_BUCKETS,
                                      registry=r)  # fmt: skip
        self.estimated_wait_seconds = Histogram("probeguard_estimated_wait_seconds",
                                                "Admitted work ahead of a request when it arrives, in seconds at the "
                                                "measured rate (a request due earlier than some of it runs sooner)",
                                                buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.backend_rate = Gauge("probeguard_backend_tokens_per_second",
                                  "Backend speed on recent batches, planned tokens (padding included) per second",
                                  registry=r)  # fmt: skip
        self.queue_depth = Gauge("probeguard_queue_depth_tokens", "Tokens waiting in the batch queue", registry=r)
        self.tokens = Counter("probeguard_tokens_processed", "Tokens scored", registry=r)
        self.detections = Counter("probeguard_detections", "PII spans found", ["label"], registry=r)
        self.flags = Counter("probeguard_category_flags", "Messages flagged", ["category"], registry=r)
        self.errors = Counter("probeguard_errors", "Errors answered", ["type"], registry=r)
        self.explained = Counter("probeguard_explained_texts", "Texts scored with explain: true (their explanation "
                                 "work is counted in admission)", registry=r)  # fmt: skip
        self.refusals = Counter("probeguard_refusals", "Requests refused at admission (429), by the bound they "
                                "would break", ["reason"], registry=r)  # fmt: skip
        for reason in REFUSAL_REASONS:  # every series exists from the start: rate() sees 0, not no data
            self.refusals.labels(reason=reason)
        self.admissions = Counter("probeguard_admissions", "Admission decisions by request size class (tokens: "
                                  "short <= 64 < medium <= 256 < long <= 2048 < document) and outcome (admitted, "
                                  "refused)", ["size_class", "outcome"], registry=r)  # fmt: skip
        self.answer_bound_seconds = Histogram("probeguard_answer_bound_seconds", "Answer bound given at admission: "
                                              "max(answer deadline, latency budget + 2 x own work at the measured "
                                              "rate)", ["size_class"], buckets=BOUND_BUCKETS, registry=r)  # fmt: skip
        for size in SIZE_CLASS_NAMES:  # every class starts at 0: an admitted-share panel is never empty
            for outcome in ("admitted", "refused"):
                self.admissions.labels(size_class=size, outcome=outcome)
        self.bundle = Info("probeguard_bundle", "Loaded bundle and runtime", registry=r)
        self.ready = Gauge("probeguard_ready", "1 when the bundle is loaded and warmed up", registry=r)

    def names(self) -> set[str]:
        """Every exported series name (for the dashboard test)."""
        out = set()
        for metric in self.registry.collect():
            for sample in metric.samples:
                out.add(sample.name)
        return out
