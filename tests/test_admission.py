"""Admission and batching in the sidecar on a tiny host: queue timeouts, planned batches, size-scaled answer bounds and
the schedule they are checked against, documents scored across batches, refusals by reason, the throughput meter and
the pass cost calibrated at startup. Fairness across sizes under overload: test_admission_fairness."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from probeguard.detector import Detector
from tests.service_client import gated, load_service_detector, service_client, wait_ready


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory, tiny_hosts) -> Detector:
    return load_service_detector(tmp_path_factory.mktemp("admission"), tiny_hosts("gemma3_text"))


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a condition another thread makes true (polled; fails after `timeout_s`)."""
    stop = time.perf_counter() + timeout_s
    while not condition():
        assert time.perf_counter() < stop, "condition never became true"
        time.sleep(0.002)


def _rate(client: TestClient) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("probeguard_backend_tokens_per_s"))
    return float(line.split()[-1])


def test_startup_calibration_fits_the_pass_cost_and_seeds_the_rate(tiny_detector):
    det = Detector(tiny_detector.bundle, tiny_detector.backend, tiny_detector.tokenizer, tiny_detector.host,
                   tiny_detector.settings)  # fmt: skip
    with service_client(det, calibrate_cost=True) as c:
        wait_ready(c)
        assert _rate(c) > 0  # before any request: the first ones get a wait estimate
    assert det.info()["pass_cost"] == dataclasses.asdict(det.pass_cost)  # what the service now plans with
    with service_client(tiny_detector) as c:  # calibration off: no rate until the first batch has run
        wait_ready(c)
        assert _rate(c) == 0
        assert tiny_detector.pass_cost == tiny_detector.backend.pass_cost


def test_requests_that_waited_too_long_are_answered_not_run(tiny_detector, monkeypatch):
    import threading

    gate, entered = threading.Event(), threading.Event()
    real = tiny_detector.backend.forward

    def slow(batch):
        entered.set()
        gate.wait(5)
        return real(batch)

    with service_client(tiny_detector, queue_timeout_s=0.2) as c:
        wait_ready(c)
        batcher = c.app.state["service"].batcher
        monkeypatch.setattr(tiny_detector.backend, "forward", slow)
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(c.post, "/v1/detect", json={"text": "first"})]
            assert entered.wait(5), "the first batch is running (blocked) before the others arrive"
            futures += [pool.submit(c.post, "/v1/detect", json={"text": f"request {i}"}) for i in range(2)]
            _until(lambda: len(batcher._schedule) == 2)  # both queued behind the blocked batch
            expires = max(step.job.expires for step in batcher._schedule)
            _until(lambda: time.perf_counter() > expires)  # ... and past their bound plus the queue timeout
            gate.set()
            codes = sorted(f.result().status_code for f in futures)
        assert codes == [200, 503, 503]
        monkeypatch.setattr(tiny_detector.backend, "forward", real)
        assert c.post("/v1/detect", json={"text": "after"}).status_code == 200


def test_batcher_groups_requests_by_the_planned_padded_cost(tiny_detector):
    import asyncio
    import dataclasses

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.jobs import BatchStats

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
                assert all(len(r.detections) == 1 for r in results)
            finally:
                await batcher.close()

        asyncio.run(run())
        return [b.items for b in batches]

    assert batches_for([long, long, long]) == [2, 1]
    assert batches_for([long, short, short]) == [3]
    assert [len(b) for b in det.forward_batches(det.encode([long, short, short]))] == [1, 2]


def test_a_batch_lasts_at_most_its_share_of_the_budget(tiny_detector):
    from probeguard.service.batcher import BATCH_SHARE, MicroBatcher

    batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
    assert batcher.batch_work_limit(tiny_detector) == tiny_detector.settings.batch_tokens  # nothing measured yet
    batcher.meter.tokens_per_s = 1000.0
    assert batcher.batch_work_limit(tiny_detector) == min(tiny_detector.settings.batch_tokens, 500 * BATCH_SHARE)


def test_exclusive_work_is_admitted_like_a_request_and_runs_alone_on_the_inference_thread():
    """The console's trace: refused with 429 when it cannot meet its bound; admitted, it runs on the inference thread
    and counts in the work later requests are planned behind until it is done."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    async def scenario() -> None:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
        batcher.start()
        try:
            batcher.meter.tokens_per_s = 100.0
            batcher._in_flight, batcher._running_work = 1, 500.0  # 5 s of work ahead
            batcher._running_since = time.perf_counter()
            with pytest.raises(QueueFullError) as refused:
                await batcher.run_exclusive(lambda: "ran", 10.0)
            assert refused.value.reason == "answer_deadline" and not batcher._schedule
            batcher._in_flight = 0
            release = threading.Event()

            def work() -> str:
                release.wait(5)
                return threading.current_thread().name

            running = asyncio.ensure_future(batcher.run_exclusive(work, 30.0))
            await asyncio.sleep(0.05)
            seen = batcher.estimated_wait_s()
            release.set()
            thread = await running
            assert 0.0 < seen <= 0.3 and not batcher.busy
            assert thread.startswith("probeguard-inference"), "runs on the inference thread, serialised with batches"
        finally:
            await batcher.close()

    asyncio.run(scenario())


def test_the_queue_memory_bound_refuses_with_its_own_reason(tiny_detector):
    """With no rate measured the time bounds admit everything; the queue's token bound still holds: one request runs
    (blocked), one waits, the next would pass the bound and is refused as queue_tokens."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    text = "Anna Schmidt lives at 221B Baker Street in London."
    (encoded,) = tiny_detector.encode([text])
    tokens = len(encoded.ids)

    async def run(gate: threading.Event, entered: threading.Event) -> QueueFullError:
        batcher = MicroBatcher(0.0, queue_tokens=2 * tokens + tokens // 2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(tiny_detector, [text], [encoded]))
        assert await asyncio.to_thread(entered.wait, 5)
        waiting = asyncio.ensure_future(batcher.submit(tiny_detector, [text], [encoded]))
        await asyncio.sleep(0)  # let it reach the queue
        assert batcher.depth_tokens == 2 * tokens  # admitted and not yet answered: the running one too
        try:
            await batcher.submit(tiny_detector, [text], [encoded])
            raise AssertionError("admitted past the queue's token bound")
        except QueueFullError as exc:
            refused = exc
        gate.set()
        assert len((await running).detections) == len((await waiting).detections) == 1
        assert batcher.depth_tokens == 0
        await batcher.close()
        return refused

    with gated(tiny_detector) as gates:
        refused = asyncio.run(run(*gates))
    assert refused.reason == "queue_tokens" and refused.retry_after_s == 1


def test_a_refusal_is_429_with_retry_after_and_counted_by_reason_and_size(tiny_detector):
    with service_client(tiny_detector) as c:
        wait_ready(c)
        batcher = c.app.state["service"].batcher
        batcher.meter.tokens_per_s = 100.0
        batcher._in_flight, batcher._running_work, batcher._running_since = 1, 10_000.0, time.perf_counter()
        try:
            r = c.post("/v1/detect", json={"text": "Anna Schmidt"})
        finally:
            batcher._in_flight = 0
        assert r.status_code == 429 and r.json()["error"]["type"] == "QueueFullError"
        assert 97 <= int(r.headers["retry-after"]) <= 100  # ~100 s of work ahead, less its ~0.9 s bound
        metrics = c.get("/metrics").text
        assert 'probeguard_refusals_total{reason="answer_deadline"} 1.0' in metrics
        assert 'probeguard_refusals_total{reason="admitted_deadline"} 0.0' in metrics
        assert 'probeguard_admissions_total{outcome="refused",size_class="short"} 1.0' in metrics
        assert c.post("/v1/detect", json={"text": "Anna Schmidt"}).status_code == 200
        metrics = c.get("/metrics").text
        assert 'probeguard_admissions_total{outcome="admitted",size_class="short"} 1.0' in metrics
        assert 'probeguard_answer_bound_seconds_count{size_class="short"} 1.0' in metrics


def test_throughput_meter_weighs_batches_by_duration():
    from probeguard.service.admission import ThroughputMeter

    meter = ThroughputMeter(decay=1.0)
    for _ in range(9):
        meter.observe(60, 0.1)  # quick short batches: 600 tokens/s
    meter.observe(1000, 4.0)  # one slow long batch: 250 tokens/s
    assert meter.tokens_per_s == pytest.approx((9 * 60 + 1000) / (9 * 0.1 + 4.0))
