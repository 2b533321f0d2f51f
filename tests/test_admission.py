"""Admission and batching in the sidecar on a tiny host: queue timeouts, planned batches, the wait budget, the answer
deadline, refusals by reason, the throughput meter and the pass cost calibrated at startup."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from litestar.testing import TestClient

from probeguard.detector import Detector
from tests.service_client import load_service_detector, service_client, wait_ready


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
            _until(lambda: len(batcher._queue) == 2)  # both queued behind the blocked batch
            deadline = max(job.deadline for job in batcher._queue)
            _until(lambda: time.perf_counter() > deadline)  # ... and past their queue deadline
            gate.set()
            codes = sorted(f.result().status_code for f in futures)
        assert codes == [200, 503, 503]
        monkeypatch.setattr(tiny_detector.backend, "forward", real)
        assert c.post("/v1/detect", json={"text": "after"}).status_code == 200


def test_batcher_groups_requests_by_the_planned_padded_cost(tiny_detector):
    import asyncio
    import dataclasses

    from probeguard.service.batcher import BatchStats, MicroBatcher

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
    from probeguard.service.batcher import BATCH_SHARE, MicroBatcher

    batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
    assert batcher.batch_work_limit(tiny_detector) == tiny_detector.settings.batch_tokens  # nothing measured yet
    batcher.meter.tokens_per_s = 1000.0
    assert batcher.batch_work_limit(tiny_detector) == min(tiny_detector.settings.batch_tokens, 500 * BATCH_SHARE)


@contextlib.contextmanager
def _gated(detector: Detector) -> Iterator[tuple[threading.Event, threading.Event]]:
    """`detector.detect_encoded` blocks until the first yielded event is set (at most 5 s): a batcher stays busy on
    it. The second is set once a batch is blocked there (the batcher is running)."""
    gate, entered = threading.Event(), threading.Event()
    real = detector.detect_encoded

    def blocked(*args, **kwargs):
        entered.set()
        gate.wait(5)
        return real(*args, **kwargs)

    detector.detect_encoded = blocked  # type: ignore[method-assign]
    try:
        yield gate, entered
    finally:
        del detector.detect_encoded


def test_admission_by_estimated_wait(tiny_detector):
    """Over the latency budget a request is refused at once with a Retry-After computed from the work ahead."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    async def run(gate: threading.Event, entered: threading.Event) -> tuple[float, int, int]:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5)
        batcher.start()
        assert batcher.admit() == 0.0, "nothing measured, nothing queued: admitted"
        batcher.meter.tokens_per_s = 1000.0  # pretend the backend scores 1000 tokens/s
        text = "Anna Schmidt lives at 221B Baker Street in London. " * 3
        encoded = tiny_detector.encode([text])
        first = asyncio.ensure_future(batcher.submit(tiny_detector, [text], encoded))
        assert await asyncio.to_thread(entered.wait, 5), "the first batch is running (blocked on the gate)"
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

    with _gated(tiny_detector) as gates:
        wait, retry, n_queued = asyncio.run(run(*gates))
    # The queue was filled one request (well under 100 tokens, 0.1 s at 1000 tokens/s) at a time until the wait
    # passed 0.5 s, so it is over the budget by less than 0.1 s: retry after one second.
    assert 0.5 < wait < 0.6 and n_queued >= 1
    assert retry == 1


def test_admission_by_answer_deadline_refuses_the_longest_texts_first(tiny_detector):
    """Busy: a request whose wait plus own compute passes the deadline gets 429 (Retry-After from the excess) while a
    short one is admitted; idle: the same long request runs."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    short = "Anna Schmidt lives at 221B Baker Street in London."
    long = short * 35  # under the tiny detector's 2,000 characters

    async def run(gate: threading.Event, entered: threading.Event) -> tuple[float, int, float]:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_deadline_s=1.0)
        batcher.start()
        batcher.meter.tokens_per_s = 500.0  # the long text alone: over 1 s
        (long_enc,) = tiny_detector.encode([long])
        long_work = tiny_detector.batch_cost(tiny_detector.window_lengths([long_enc]))
        first = asyncio.ensure_future(batcher.submit(tiny_detector, [short], tiny_detector.encode([short])))
        assert await asyncio.to_thread(entered.wait, 5), "running, blocked on the gate: the service is busy"
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

    with _gated(tiny_detector) as gates:
        wait, retry, long_work = asyncio.run(run(*gates))
    assert wait <= 0.5 and wait + long_work / 500 > 1.0  # within the wait budget, over the answer deadline
    # never 0, never more than the whole estimated answer (the exact rounding: the hand-worked test above)
    assert 1 <= retry <= math.ceil(wait + long_work / 500)


def test_retry_after_is_the_excess_rounded_up_to_whole_seconds():
    """Worked by hand: 100 tokens/s and 351 tokens queued behind a batch with nothing left to run: the wait is 3.51 s,
    over the 0.5 s budget by 3.01 s, so Retry-After 4. Answer deadline 1 s: a 0.3 s wait plus 250 tokens (2.5 s) is
    2.8 s, over by 1.8 s: 2. Plus 90 tokens (1.2 s): over by 0.2 s: 1, never 0. Plus 70 tokens (1.0 s): admitted."""
    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_deadline_s=1.0)
    try:
        batcher.meter.tokens_per_s = 100.0
        batcher._in_flight, batcher._queued_work, batcher._running_work = 1, 351.0, 0.0
        cases = [(batcher.admit, (), 4, "wait_budget"), (batcher.admit_answer, (0.3, 250.0), 2, "answer_deadline"),
                 (batcher.admit_answer, (0.3, 90.0), 1, "answer_deadline")]  # fmt: skip
        for call, args, retry, reason in cases:
            with pytest.raises(QueueFullError) as refused:
                call(*args)
            assert (refused.value.retry_after_s, refused.value.reason) == (retry, reason)
        batcher.admit_answer(0.3, 70.0)
    finally:
        batcher._executor.shutdown()


def test_exclusive_work_is_admitted_like_a_request_and_counted_while_it_runs():
    """The console's trace: refused with 429 when the queue is over budget; admitted, it runs on the inference thread
    and counts in the wait later requests see until it is done."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    async def scenario() -> None:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_deadline_s=1.0)
        try:
            batcher.meter.tokens_per_s = 100.0
            batcher._in_flight, batcher._queued_work = 1, 80.0  # 0.8 s of work ahead: over the 0.5 s budget
            with pytest.raises(QueueFullError) as refused:
                await batcher.run_exclusive(lambda: "ran", 10.0)
            assert refused.value.reason == "wait_budget" and batcher._queued_work == 80.0
            batcher._in_flight, batcher._queued_work = 0, 0.0
            release = threading.Event()
            seen: list[float] = []

            def work() -> str:
                release.wait(5)
                return threading.current_thread().name

            running = asyncio.ensure_future(batcher.run_exclusive(work, 30.0))
            await asyncio.sleep(0.05)
            seen.append(batcher.estimated_wait_s())
            release.set()
            thread = await running
            assert seen[0] == pytest.approx(0.3) and batcher._queued_work == 0.0 and not batcher.busy
            assert thread.startswith("probeguard-inference"), "runs on the inference thread, serialised with batches"
        finally:
            batcher._executor.shutdown()

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
        batcher = MicroBatcher(0.0, queue_tokens=tokens + tokens // 2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(tiny_detector, [text], [encoded]))
        assert await asyncio.to_thread(entered.wait, 5)
        waiting = asyncio.ensure_future(batcher.submit(tiny_detector, [text], [encoded]))
        await asyncio.sleep(0)  # let it reach the queue
        assert batcher.depth_tokens == tokens
        try:
            await batcher.submit(tiny_detector, [text], [encoded])
            raise AssertionError("admitted past the queue's token bound")
        except QueueFullError as exc:
            refused = exc
        gate.set()
        assert len(await running) == len(await waiting) == 1
        await batcher.close()
        return refused

    with _gated(tiny_detector) as gates:
        refused = asyncio.run(run(*gates))
    assert refused.reason == "queue_tokens" and refused.retry_after_s == 1


def test_a_refusal_is_429_with_retry_after_and_counted_by_reason(tiny_detector):
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
        assert 90 <= int(r.headers["retry-after"]) <= 100  # ~100 s of work ahead, less the 0.5 s budget
        metrics = c.get("/metrics").text
        assert 'probeguard_refusals_total{reason="wait_budget"} 1.0' in metrics
        assert 'probeguard_refusals_total{reason="answer_deadline"} 0.0' in metrics
        assert c.post("/v1/detect", json={"text": "Anna Schmidt"}).status_code == 200


def test_throughput_meter_weighs_batches_by_duration():
    from probeguard.service.batcher import ThroughputMeter

    meter = ThroughputMeter(decay=1.0)
    for _ in range(9):
        meter.observe(60, 0.1)  # quick short batches: 600 tokens/s
    meter.observe(1000, 4.0)  # one slow long batch: 250 tokens/s
    assert meter.tokens_per_s == pytest.approx((9 * 60 + 1000) / (9 * 0.1 + 4.0))
