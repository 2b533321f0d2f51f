"""Admission fair to every size (service.admission): answer bounds that grow with the work, the schedule they are
checked against, documents scored across batches and waiting for the bulk lane, and a document admitted while short
requests overload a service of known capacity."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from probeguard.detector import Detector
from tests.service_client import gated, load_service_detector


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory, tiny_hosts) -> Detector:
    return load_service_detector(tmp_path_factory.mktemp("fairness"), tiny_hosts("gemma3_text"))


def test_schedule_lateness_worked_by_hand():
    """100 tokens/s from t = 0; admitted A (50 tokens, due 1.0) and B (100, due 3.0). N (80, due 2.0) runs between
    them: done at 1.3, B at 2.3: both 0.7 s early. N2 (80, due 1.2) is done at 1.3: 0.1 s late itself. N3 (200, due
    2.5) is done at 2.5, on time, but B then ends at 3.5: 0.5 s late. A, due before all of them, is never checked."""
    from probeguard.service.admission import Schedule, Step

    schedule: Schedule[Step] = Schedule()
    schedule.add([Step(3.0, 1, 100.0, False), Step(1.0, 0, 50.0, False)])
    assert [s.due for s in schedule] == [1.0, 3.0]
    cases = [(2.0, 80.0, (-0.7, -0.7)), (1.2, 80.0, (0.1, -0.7)), (2.5, 200.0, (0.0, 0.5))]
    for due, work, (own, others) in cases:
        got = schedule.lateness_s([Step(due, 9, work, False)], 0.0, 100.0)
        assert got == pytest.approx((own, others))
    assert schedule.lateness_s([Step(0.5, 9, 10.0, False)], 0.0, 100.0)[0] == pytest.approx(-0.4)


def test_answer_bounds_grow_with_the_work_and_documents_share_the_lane():
    """The bound is the latency budget plus twice the own work; each step is due at that bound of the work so far; the
    bulk lane is free when what is left on it would be done at half the rate."""
    from probeguard.service.admission import Schedule, Step, answer_bound_s, is_bulk, plan_dues, size_class

    assert answer_bound_s(1.0, 0.5, 2.0) == 2.5
    assert answer_bound_s(3.0, 0.5, 2.0) == 0.5 + 6.0 + 12.0  # a document: twice as long again to wait for the lane
    assert plan_dues([100.0], 10.0, 100.0, 0.5, 2.0, 0.0) == [12.5]
    assert plan_dues([100.0], 10.0, 100.0, 0.5, 2.0, 0.25) == [12.25]  # planned one batch early
    assert plan_dues([100.0, 100.0], 10.0, 100.0, 0.5, 2.0, 0.0) == [12.5, 14.5]  # step by step: the last at the bound
    assert not is_bulk(2.0, 0.5) and is_bulk(2.01, 0.5)  # over four budgets of own work: a document
    schedule: Schedule[Step] = Schedule()
    assert schedule.lane_free_at(10.0, 100.0, 2.0) == float("-inf")
    schedule.add([Step(14.5, 0, 100.0, True), Step(19.5, 2, 100.0, True), Step(11.0, 1, 5.0, False)])
    assert schedule.lane_free_at(10.0, 100.0, 2.0) == 14.0  # what is left of the documents, at half the rate
    assert [size_class(n) for n in (1, 64, 65, 256, 2048, 2049, 20_000)] == [
        "short", "short", "medium", "medium", "long", "document", "document"]  # fmt: skip


def _paced(detector: Detector, rate: float, monkeypatch) -> None:
    """The backend takes `rate` planned tokens per second (the tiny host itself is far faster): a service whose
    capacity is known, on any box."""
    real = detector.backend.forward

    def forward(batch, layers: bool = False):
        started = time.perf_counter()
        out = real(batch, layers)
        rows = [int(m.sum()) for m in batch.attention_mask]
        time.sleep(max(0.0, detector.pass_cost.of(rows) / rate - (time.perf_counter() - started)))
        return out

    monkeypatch.setattr(detector.backend, "forward", forward)


@pytest.fixture(scope="module")
def small_windows(tiny_detector) -> Detector:
    """The tiny detector with 32-token windows: a ~500-token text is a document of many windows and batches."""
    settings = dataclasses.replace(tiny_detector.settings, window_tokens=32, window_overlap=4, max_chars=20_000)
    d = tiny_detector
    return Detector(d.bundle, d.backend, d.tokenizer, d.host, settings)


SENTENCE = "Anna Schmidt lives at 221B Baker Street in London, call +44 20 7946 0958. "


def test_a_document_alone_runs_across_batches_and_equals_one_shot(small_windows, monkeypatch):
    """Idle, a document far over one batch is admitted, scored a few windows per batch, and answered exactly as the
    detector answers it in one call."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.jobs import BatchStats

    det, doc = small_windows, SENTENCE * 30
    _paced(det, 4000.0, monkeypatch)
    batches: list[BatchStats] = []

    async def run():
        batcher = MicroBatcher(0.0, 1_000_000, batches.append, latency_budget_s=0.1)
        batcher.meter.seed(4000.0, 1.0)
        batcher.start()
        try:
            return (await batcher.submit(det, [doc], det.encode([doc]))).detections
        finally:
            await batcher.close()

    (streamed,) = asyncio.run(run())
    (one_shot,) = det.detect([doc])
    assert len(det.windows_of(det.encode([doc]))) > 10 and len(batches) >= 4
    assert sum(b.tokens for b in batches) == one_shot.n_tokens  # every token scored once
    assert streamed.spans == one_shot.spans and streamed.spans
    assert {c: v.score for c, v in streamed.categories.items()} == pytest.approx(
        {c: v.score for c, v in one_shot.categories.items()}, abs=1e-6)  # fmt: skip


def test_a_document_is_admitted_and_answered_while_short_requests_overload_the_service(small_windows, monkeypatch):
    """Short requests arrive at ~4x what the service can score; a document (~17 windows, ~0.45 s of work) arrives in
    the middle. It is admitted and answered within its size-scaled bound, and short requests keep being admitted and
    answered within theirs while it runs (under the old fixed answer deadline it would have been refused)."""
    import asyncio

    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    det, rate, short, doc = small_windows, 2000.0, SENTENCE, SENTENCE * 16
    _paced(det, rate, monkeypatch)
    short_enc, doc_enc = det.encode([short]), det.encode([doc])

    async def timed(batcher: MicroBatcher, text: str, enc) -> tuple[float, float, float] | None:
        arrived = time.perf_counter()
        try:
            await batcher.submit(det, [text], enc, arrived=arrived)
        except QueueFullError:
            return None
        return arrived, time.perf_counter(), time.perf_counter() - arrived

    async def run():
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_slowdown=2.0)
        batcher.meter.seed(rate, 1.0)
        batcher.start()
        shorts, document = [], None
        started = time.perf_counter()
        i = 0
        while (now := time.perf_counter()) < started + 3.0:
            shorts.append(asyncio.ensure_future(timed(batcher, short, short_enc)))
            if document is None and now > started + 1.0:
                doc_bound = batcher.answer_bound_s(det.rows_work(det.window_lengths(doc_enc)))
                document = asyncio.ensure_future(timed(batcher, doc, doc_enc))
            i += 1
            await asyncio.sleep(max(0.0, started + i * 0.004 - time.perf_counter()))  # 250 requests/s
        short_bound = batcher.answer_bound_s(det.rows_work(det.window_lengths(short_enc)))
        results = await asyncio.gather(*shorts)
        doc_result = await document
        await batcher.close()
        return results, doc_result, doc_bound, short_bound

    results, doc_result, doc_bound, short_bound = asyncio.run(run())
    capacity = rate * 8 / det.batch_cost(det.window_lengths(short_enc) * 8)  # short requests per second, batched
    answered = [r for r in results if r is not None]
    assert len(results) / 3.0 > 3 * capacity, ("offered well over capacity", len(results), capacity)
    assert 0 < len(answered) < 0.5 * len(results), "overloaded: many short requests refused, some admitted"
    assert doc_result is not None, "the document was refused"
    arrived, done, took = doc_result
    assert took <= doc_bound + 0.3, (took, doc_bound)
    during = [r for r in answered if arrived < r[0] < done]
    assert len(during) >= 10, "short requests kept being admitted while the document was scored"
    within = [r[2] <= short_bound + 0.05 for r in answered]  # its bound (~0.56 s), and a little for the event loop
    assert sum(within) >= 0.9 * len(within), (short_bound, sorted(r[2] for r in answered)[-10:])


def test_documents_wait_for_the_bulk_lane_up_to_twice_their_own_time_on_it(tiny_detector):
    """Busy, 100 tokens/s: a document (seconds of work) takes the bulk lane; a second one, half as long again, may wait
    for it (up to twice its own time on the lane, which its bound includes); a third like the first would wait longer
    than that: 429 answer_deadline with the excess as Retry-After. A short request is still admitted."""
    import asyncio

    from probeguard.service.admission import LANE_QUEUE
    from probeguard.service.batcher import MicroBatcher
    from probeguard.service.errors import QueueFullError

    short, doc = "Anna Schmidt lives at 221B Baker Street in London.", "Anna Schmidt lives in London. " * 40

    async def run(gate: threading.Event, entered: threading.Event) -> tuple[QueueFullError, list[float]]:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_slowdown=2.0)
        batcher.meter.tokens_per_s = 1000.0
        batcher.start()
        enc, longer = tiny_detector.encode([doc]), doc + doc[: len(doc) // 2]
        first = asyncio.ensure_future(batcher.submit(tiny_detector, [short], tiny_detector.encode([short])))
        assert await asyncio.to_thread(entered.wait, 5), "running, blocked on the gate: the service is busy"
        batcher.meter.tokens_per_s = 100.0  # the documents: seconds of work each
        docs = [
            asyncio.ensure_future(batcher.submit(tiny_detector, [doc], enc)),  # the second waits 2/3 of its time
            asyncio.ensure_future(batcher.submit(tiny_detector, [longer], tiny_detector.encode([longer]))),
        ]
        await asyncio.sleep(0)
        assert sum(s.bulk for s in batcher._schedule) >= 2, "two documents on the bulk lane"
        try:
            await batcher.submit(tiny_detector, [doc], enc)
            raise AssertionError("a third document was admitted past its bound")
        except QueueFullError as exc:
            refused = exc
        batcher.meter.tokens_per_s = 1000.0  # a short request: due well before the documents' steps
        admitted = asyncio.ensure_future(batcher.submit(tiny_detector, [short], tiny_detector.encode([short])))
        await asyncio.sleep(0)
        gate.set()
        answers = await asyncio.gather(first, *docs, admitted)
        assert all(len(r.detections) == 1 for r in answers)
        await batcher.close()
        return refused, [a.bound_s for a in answers[1:3]]

    assert LANE_QUEUE == 2.0  # the third (own W) would wait 2 x (W + 1.5 W) = 5 W on the lane, over its 2 x 2 W
    with gated(tiny_detector) as gates:
        refused, bounds = asyncio.run(run(*gates))
    assert refused.reason == "answer_deadline" and refused.retry_after_s >= 2
    own = [(b - 0.5) / (2 * (1 + LANE_QUEUE)) for b in bounds]  # the budget, twice its work, and its lane wait
    assert 2.0 < own[0] < own[1]


def test_a_request_that_would_make_an_admitted_one_late_is_refused(tiny_detector):
    """100 tokens/s. A queued text of W s of work is admitted behind a running batch with 0.05 s of slack left. A
    short request that arrived earlier (due before it; `arrived` in the past) would itself be on time, but would push
    the queued one F - 0.05 s past its bound (F: its own work): refused as admitted_deadline."""
    import asyncio

    from probeguard.service.batcher import BATCH_SHARE, MicroBatcher
    from probeguard.service.errors import QueueFullError

    short, mid = "Anna Schmidt lives at 221B Baker Street.", "Anna Schmidt lives at 221B Baker Street in London. " * 4
    short_enc, mid_enc = tiny_detector.encode([short]), tiny_detector.encode([mid])
    own_s = {
        t: tiny_detector.rows_work(tiny_detector.window_lengths(e)) / 100
        for t, e in ((short, short_enc), (mid, mid_enc))
    }

    async def run(gate: threading.Event, entered: threading.Event) -> QueueFullError:
        batcher = MicroBatcher(0.0, 1_000_000, latency_budget_s=0.5, answer_slowdown=2.0)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(tiny_detector, [short], short_enc))
        assert await asyncio.to_thread(entered.wait, 5)
        batcher.meter.tokens_per_s = 100.0
        allowance = 0.5 * (1 - BATCH_SHARE)  # the wait a step is planned with: the budget less one batch
        ahead = allowance + own_s[mid] - 0.05  # the running batch's remaining seconds: 0.05 s of slack for the next
        batcher._running_work, batcher._running_since = 100 * ahead, time.perf_counter()
        queued = asyncio.ensure_future(batcher.submit(tiny_detector, [mid], mid_enc))
        await asyncio.sleep(0)
        assert len(batcher._schedule) == 1, "admitted"
        arrived = batcher._running_since + ahead + own_s[short] - allowance - 2 * own_s[short] + 0.02  # 0.02 s early
        try:
            await batcher.submit(tiny_detector, [short], short_enc, arrived=arrived)
            raise AssertionError("admitted though it makes the queued request late")
        except QueueFullError as exc:
            refused = exc
        gate.set()
        await asyncio.gather(running, queued)
        await batcher.close()
        return refused

    assert own_s[short] > 0.05 + 0.02 and own_s[mid] > own_s[short]
    with gated(tiny_detector) as gates:
        refused = asyncio.run(run(*gates))
    assert refused.reason == "admitted_deadline"
