"""The sidecar in-process (Litestar test client with lifespan) on a tiny host: routes, errors, batching, metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from detector import Detector, DetectorSettings
from service.app import create_app
from service.metrics import Metrics
from service.settings import ServiceSettings
from tests.bundles import make_bundle

TOKEN = "s3cret-token"
CANARY = "Zebulon Quartermaine-4417"


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory, tiny_hosts) -> Detector:
    tmp = tmp_path_factory.mktemp("svc")
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp / "bundle", host, threshold=0.4)
    return Detector.load(
        tmp / "bundle", DetectorSettings(cache_dir=tmp / "cache", host_path=host, max_chars=2000, backend="torch")
    )


def _client(detector: Detector, **kw) -> TestClient:
    kw.setdefault("calibrate_cost", False)  # plans stay the backend's fixed model; calibration has its own test
    settings = ServiceSettings(max_body_bytes=20_000, max_messages=4, max_batch_items=3, **kw)

    def loader(path: Path | None) -> Detector:
        return Detector.load(path or detector.bundle.path, detector.settings)

    return TestClient(create_app(settings, detector, loader))


def _wait_ready(client: TestClient) -> None:
    for _ in range(200):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service never became ready")


@pytest.fixture
def client(tiny_detector):
    with _client(tiny_detector) as c:
        _wait_ready(c)
        yield c


def _rate(client: TestClient) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("probeguard_backend_tokens_per_s"))
    return float(line.split()[-1])


def test_startup_calibration_fits_the_pass_cost_and_seeds_the_rate(tiny_detector):
    det = Detector(tiny_detector.bundle, tiny_detector.backend, tiny_detector.tokenizer, tiny_detector.host,
                   tiny_detector.settings)  # fmt: skip
    with _client(det, calibrate_cost=True) as c:
        _wait_ready(c)
        assert _rate(c) > 0  # before any request: the first ones get a wait estimate
    fit_rows = det.info()["pass_cost"]
    assert fit_rows == dataclasses.asdict(det.pass_cost)
    with _client(tiny_detector) as c:  # calibration off: no rate until the first batch has run
        _wait_ready(c)
        assert _rate(c) == 0
        assert tiny_detector.pass_cost == tiny_detector.backend.pass_cost


def test_health_ready_schema(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["bundle"] == "test-bundle" and ready["backend"] == "torch-cpu"
    schema = client.get("/schema/openapi.json").json()
    assert {"/v1/detect", "/v1/detect/batch", "/healthz", "/readyz"} <= set(schema["paths"])


def test_detect_text_matches_the_library(client, tiny_detector):
    text = "Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org."
    r = client.post("/v1/detect", json={"text": text, "redact": "replace", "return_scores": True})
    assert r.status_code == 200 and r.headers["x-request-id"]
    body = r.json()
    (lib,) = tiny_detector.detect([text])
    assert [(s["label"], s["start"], s["end"]) for s in body["spans"]] == [(s.label, s.start, s.end) for s in lib.spans]
    assert body["categories"]["unsafe"]["score"] == pytest.approx(lib.categories["unsafe"].score, abs=1e-4)
    assert "threshold" in body["categories"]["unsafe"] and body["bundle"] == "test-bundle"
    assert body["redacted"] == tiny_detector_redact(text, lib)
    assert set(body["timing_ms"]) == {"tokenize", "queue_and_inference"}


def tiny_detector_redact(text, result):
    out, cursor = [], 0
    for s in result.spans:
        out += [text[cursor : s.start], f"<{s.label}>"]
        cursor = s.end
    return "".join([*out, text[cursor:]])


def test_messages_keep_roles_and_indices(client):
    msgs = [{"role": "user", "content": "Hi, I'm Anna"}, {"role": "assistant", "content": "Hello Anna!"}]
    body = client.post("/v1/detect", json={"messages": msgs, "categories": ["unsafe"]}).json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert all(s["message"] in (0, 1) for s in body["spans"])
    assert set(body["categories"]) == {"unsafe"} and set(body["messages"][0]["categories"]) == {"unsafe"}
    top = max(m["categories"]["unsafe"]["score"] for m in body["messages"])
    assert body["categories"]["unsafe"]["score"] == top


def test_batch_equals_single_requests(client):
    texts = ["Anna Schmidt", "call +44 20 7946 0958", "nothing to see here"]
    batch = client.post("/v1/detect/batch", json={"items": [{"text": t} for t in texts]}).json()["items"]
    for t, item in zip(texts, batch, strict=True):
        single = client.post("/v1/detect", json={"text": t}).json()
        assert item["spans"] == single["spans"] and item["categories"] == single["categories"]


BAD_REQUESTS = [
    ({"text": ""}, 422, "EmptyInputError"),
    ({"text": "   "}, 422, "EmptyInputError"),
    ({"text": 42}, 422, "ValidationException"),
    ({"text": None}, 422, "RequestError"),
    ({}, 422, "RequestError"),
    ({"text": "a", "messages": [{"role": "user", "content": "b"}]}, 422, "RequestError"),
    ({"messages": []}, 422, "RequestError"),
    ({"messages": [{"role": "user", "content": "x"}] * 5}, 413, "TooManyItemsError"),
    ({"text": "x" * 2500}, 413, "InputTooLargeError"),
    ({"text": "ok", "unknown": 1}, 422, "ValidationException"),
    ({"text": "ok", "categories": ["spam"]}, 422, "RequestError"),
    ({"text": "ok", "redact": "shout"}, 422, "ValidationException"),
    ({"messages": [{"role": "user"}]}, 422, "ValidationException"),
]


@pytest.mark.parametrize(("body", "status", "kind"), BAD_REQUESTS)
def test_bad_requests_get_typed_errors(client, body, status, kind):
    r = client.post("/v1/detect", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error"]["type"] == kind and err["request_id"] == r.headers["x-request-id"]


def test_raw_bodies(client):
    r = client.post("/v1/detect", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("JSON is malformed")
    r = client.post("/v1/detect", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "request body is not valid UTF-8"
    r = client.post(
        "/v1/detect", content=json.dumps({"text": "a" * 30_000}), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = client.post("/v1/detect/batch", json={"items": [{"text": "a"}] * 4})
    assert r.status_code == 413 and r.json()["error"]["type"] == "TooManyItemsError"


def test_no_user_text_in_errors_logs_or_metrics(client, caplog):
    caplog.set_level("DEBUG")
    bodies = [{"text": CANARY, "categories": ["spam"]}, {"text": CANARY, "redact": CANARY},
              {"text": CANARY * 200}, {"messages": [{"role": CANARY, "content": 5}]}, {"text": CANARY}]  # fmt: skip
    for body in bodies:
        r = client.post("/v1/detect", json=body)
        if r.status_code != 200:
            assert CANARY not in r.text
    assert CANARY not in client.get("/metrics").text
    assert CANARY not in caplog.text


def test_metrics_are_exported(client):
    client.post("/v1/detect", json={"text": "Anna Schmidt anna@example.org"})
    text = client.get("/metrics").text
    for name in ("probeguard_request_duration_seconds_bucket", "probeguard_inference_duration_seconds_count",
                 "probeguard_batch_tokens_bucket", "probeguard_queue_depth_tokens", "probeguard_tokens_processed_total",
                 "probeguard_bundle_info", "probeguard_ready", "probeguard_estimated_wait_seconds_bucket",
                 "probeguard_backend_tokens_per_second"):  # fmt: skip
        assert name in text
    assert 'route="/v1/detect",status="200"' in text


def test_dashboard_queries_use_only_exported_metrics(client):
    client.post("/v1/detect", json={"text": "Anna"})
    client.post("/v1/detect", json={"text": ""})
    exported = set(re.findall(r"^(probeguard_[a-z_]+)", client.get("/metrics").text, re.M))
    exported |= Metrics().names()
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "service" / "grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    for expr in exprs:
        for name in re.findall(r"probeguard_[a-z_]+", expr):
            assert name in exported, f"dashboard uses {name}, which the service does not export"


def test_auth_token(tiny_detector):
    with _client(tiny_detector, auth_token=TOKEN) as c:
        _wait_ready(c)
        r = c.post("/v1/detect", json={"text": "hi"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "unauthorized"
        assert c.post("/v1/detect", json={"text": "hi"}, headers={"authorization": "Bearer nope"}).status_code == 401
        ok = c.post("/v1/detect", json={"text": "hi"}, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200


def test_admin_reload(tiny_detector, tmp_path):
    with _client(tiny_detector) as c:
        _wait_ready(c)
        assert c.post("/admin/reload", json={}).status_code == 403, "admin is off without a token"
    with _client(tiny_detector, auth_token=TOKEN) as c:
        _wait_ready(c)
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert c.post("/admin/reload", json={}, headers=auth).json()["status"] == "reloaded"
        for bad in ("../../etc", "/etc/passwd", "a/../../b", "x"):
            r = c.post("/admin/reload", json={"bundle": bad}, headers=auth)
            assert r.status_code == 422, bad
        r = c.post("/admin/reload", json={"bundle": "nope/0.0.0"}, headers=auth)
        assert r.status_code == 409 and "previous bundle keeps serving" in r.json()["error"]["message"]
        assert c.post("/v1/detect", json={"text": "still serving"}, headers=auth).status_code == 200


def test_inference_failure_fails_only_that_batch(tiny_detector, monkeypatch):
    from detector.errors import InferenceError

    calls = {"n": 0}
    real = tiny_detector.backend.forward

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 1:
            raise InferenceError("simulated session failure")
        return real(batch)

    with _client(tiny_detector) as c:
        _wait_ready(c)
        monkeypatch.setattr(tiny_detector.backend, "forward", flaky)
        r = c.post("/v1/detect", json={"text": "first"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "InferenceError"
        assert c.post("/v1/detect", json={"text": "second"}).status_code == 200
        assert 'probeguard_errors_total{type="InferenceError"} 1.0' in c.get("/metrics").text


def test_not_ready_answers_503(tiny_detector):
    with _client(tiny_detector) as c:
        _wait_ready(c)
        c.app.state["service"].ready = False
        r = c.post("/v1/detect", json={"text": "hi"})
        assert r.status_code == 503 and c.get("/readyz").status_code == 503


def test_requests_that_waited_too_long_are_answered_not_run(tiny_detector, monkeypatch):
    import threading

    gate = threading.Event()
    real = tiny_detector.backend.forward

    def slow(batch):
        gate.wait(5)
        return real(batch)

    with _client(tiny_detector, queue_timeout_s=0.2) as c:
        _wait_ready(c)
        monkeypatch.setattr(tiny_detector.backend, "forward", slow)
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(c.post, "/v1/detect", json={"text": "first"})]
            time.sleep(0.15)  # the first batch is running (blocked) before the others arrive
            futures += [pool.submit(c.post, "/v1/detect", json={"text": f"request {i}"}) for i in range(2)]
            time.sleep(0.6)  # the others pass their deadline in the queue
            gate.set()
            codes = sorted(f.result().status_code for f in futures)
        assert codes == [200, 503, 503]
        monkeypatch.setattr(tiny_detector.backend, "forward", real)
        assert c.post("/v1/detect", json={"text": "after"}).status_code == 200


def test_batcher_groups_requests_by_the_planned_padded_cost(tiny_detector):
    import asyncio
    import dataclasses

    from service.batcher import BatchStats, MicroBatcher

    sentence = "Anna Schmidt lives at 221B Baker Street in London. "
    encode = tiny_detector.encode
    repeats = next(k for k in range(1, 200) if tiny_detector.window_lengths(encode([sentence * k]))[0] >= 256)
    long, short = sentence * repeats, sentence
    (length,) = tiny_detector.window_lengths(encode([long]))  # one window, 256+ tokens
    cost = tiny_detector.pass_cost
    # Two long rows fit in one pass; a third does not, in one pass or two. A long and two short requests fit: the
    # plan runs the long row alone and the short ones together, so padding never counts against the budget.
    budget = int(cost.work([length, length]) + cost.call_overhead_tokens + 8)
    settings = dataclasses.replace(tiny_detector.settings, batch_tokens=budget)
    det = Detector(tiny_detector.bundle, tiny_detector.backend, tiny_detector.tokenizer, tiny_detector.host, settings)

    def batches_for(texts: list[str]) -> list[int]:
        batches: list[BatchStats] = []

        async def run() -> None:
            batcher = MicroBatcher(0.2, 100_000, batches.append)
            batcher.start()
            try:
                results = await asyncio.gather(*(batcher.submit(det, [t], det.encode([t])) for t in texts))
                assert all(len(r) == 1 for r in results)
            finally:
                await batcher.close()

        asyncio.run(run())
        return [b.items for b in batches]

    assert batches_for([long, long, long]) == [2, 1]
    assert batches_for([long, short, short]) == [3]
    assert [len(b) for b in det.forward_batches(det.encode([long, short, short]))] == [1, 2]


def test_a_batch_lasts_at_most_its_share_of_the_budget(tiny_detector):
    from service.batcher import BATCH_SHARE, MicroBatcher

    batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
    assert batcher.batch_work_limit(tiny_detector) == tiny_detector.settings.batch_tokens  # nothing measured yet
    batcher.meter.tokens_per_s = 1000.0
    assert batcher.batch_work_limit(tiny_detector) == min(tiny_detector.settings.batch_tokens, 500 * BATCH_SHARE)


@contextlib.contextmanager
def _gated(detector: Detector) -> Iterator[threading.Event]:
    """`detector.detect_encoded` blocks until the yielded event is set (at most 5 s): a batcher stays busy on it."""
    gate = threading.Event()
    real = detector.detect_encoded

    def blocked(*args, **kwargs):
        gate.wait(5)
        return real(*args, **kwargs)

    detector.detect_encoded = blocked  # type: ignore[method-assign]
    try:
        yield gate
    finally:
        del detector.detect_encoded


def test_admission_by_estimated_wait(tiny_detector):
    """Over the latency budget a request is refused at once with a Retry-After computed from the work ahead."""
    import asyncio

    from service.batcher import MicroBatcher
    from service.errors import QueueFullError

    async def run(gate: threading.Event) -> tuple[float, int, int]:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
        batcher.start()
        assert batcher.admit() == 0.0, "nothing measured, nothing queued: admitted"
        batcher.meter.tokens_per_s = 1000.0  # pretend the backend scores 1000 tokens/s
        text = "Anna Schmidt lives at 221B Baker Street in London. " * 3
        encoded = tiny_detector.encode([text])
        first = asyncio.ensure_future(batcher.submit(tiny_detector, [text], encoded))
        await asyncio.sleep(0.05)  # the first batch is running (blocked on the gate)
        queued = []
        while batcher.estimated_wait_s() <= 0.5:  # fill the queue up to the budget
            queued.append(asyncio.ensure_future(batcher.submit(tiny_detector, [text], encoded)))
            await asyncio.sleep(0)
        wait = batcher.estimated_wait_s()
        try:
            batcher.admit()
            raise AssertionError("admitted over the budget")
        except QueueFullError as exc:
            retry = exc.retry_after_s
            assert exc.reason == "wait_budget"
        gate.set()
        await asyncio.gather(first, *queued)
        await batcher.close()
        return wait, retry, len(queued)

    with _gated(tiny_detector) as gate:
        wait, retry, n_queued = asyncio.run(run(gate))
    assert wait > 0.5 and n_queued >= 1
    assert retry == max(1, math.ceil(wait - 0.5))


def test_admission_by_answer_deadline_refuses_the_longest_texts_first(tiny_detector):
    """Busy: a request whose wait plus own compute passes the deadline gets 429 (Retry-After from the excess) while a
    short one is admitted; idle: the same long request runs."""
    import asyncio

    from service.batcher import MicroBatcher
    from service.errors import QueueFullError

    short = "Anna Schmidt lives at 221B Baker Street in London."
    long = short * 35  # under the tiny detector's 2,000 characters

    async def run(gate: threading.Event) -> tuple[float, int, float]:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_deadline_s=1.0)
        batcher.start()
        batcher.meter.tokens_per_s = 500.0  # the long text alone: over 1 s
        (long_enc,) = tiny_detector.encode([long])
        long_work = tiny_detector.batch_cost(tiny_detector.window_lengths([long_enc]))
        first = asyncio.ensure_future(batcher.submit(tiny_detector, [short], tiny_detector.encode([short])))
        await asyncio.sleep(0.05)  # running, blocked on the gate: the service is busy
        admitted = asyncio.ensure_future(batcher.submit(tiny_detector, [short], tiny_detector.encode([short])))
        await asyncio.sleep(0)
        wait = batcher.estimated_wait_s()
        try:
            await batcher.submit(tiny_detector, [long], [long_enc])
            raise AssertionError("a long text over the deadline was admitted while busy")
        except QueueFullError as exc:
            retry = exc.retry_after_s
            assert exc.reason == "answer_deadline"
        gate.set()
        await asyncio.gather(first, admitted)
        alone = await batcher.submit(tiny_detector, [long], [long_enc])  # idle: runs however long it takes
        assert len(alone) == 1
        await batcher.close()
        return wait, retry, long_work

    with _gated(tiny_detector) as gate:
        wait, retry, long_work = asyncio.run(run(gate))
    assert wait <= 0.5 and wait + long_work / 500 > 1.0  # within the wait budget, over the answer deadline
    assert retry == max(1, math.ceil(wait + long_work / 500 - 1.0))


def test_a_refusal_is_429_with_retry_after_and_counted_by_reason(tiny_detector):
    with _client(tiny_detector) as c:
        _wait_ready(c)
        batcher = c.app.state["service"].batcher
        batcher.meter.tokens_per_s = 100.0
        batcher._in_flight, batcher._running_work, batcher._running_since = 1, 10_000.0, time.perf_counter()
        try:
            r = c.post("/v1/detect", json={"text": "Anna Schmidt"})
        finally:
            batcher._in_flight = 0
        assert r.status_code == 429 and r.json()["error"]["type"] == "QueueFullError"
        assert 90 <= int(r.headers["retry-after"]) <= 100  # ~100 s of work ahead, less the 0.5 s budget
        metrics = c.get("/metrics").text
        assert 'probeguard_refusals_total{reason="wait_budget"} 1.0' in metrics
        assert 'probeguard_refusals_total{reason="answer_deadline"} 0.0' in metrics
        assert c.post("/v1/detect", json={"text": "Anna Schmidt"}).status_code == 200


def test_throughput_meter_weighs_batches_by_duration():
    from service.batcher import ThroughputMeter

    meter = ThroughputMeter(decay=1.0)
    for _ in range(9):
        meter.observe(60, 0.1)  # quick short batches: 600 tokens/s
    meter.observe(1000, 4.0)  # one slow long batch: 250 tokens/s
    assert meter.tokens_per_s == pytest.approx((9 * 60 + 1000) / (9 * 0.1 + 4.0))
