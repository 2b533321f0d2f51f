"""Micro-batcher: concurrent requests are grouped up to the detector's padding-aware token budget
(`DetectorSettings.batch_tokens`, the same budget that packs windows into forward passes) or a short wait, scored
off the event loop in one inference thread, and answered. Admission answers 429 at once when the estimated wait
passes the latency budget, or, while busy, the estimated answer time (wait plus own work) passes the answer deadline,
or the queue is full; a request whose client has gone (its future cancelled) is dropped before inference."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from probeguard.detector import Detection, Detector
from probeguard.detector.tokenize import EncodedText
from probeguard.service.errors import DrainingError, QueueFullError, QueueTimeoutError

# Share of the latency budget one batch may last. Smaller keeps answers closer to the budget; larger amortises the
# per-call cost (~20 tokens of compute, detector/batching.py) over more texts; at 1.0 accepted p99 overshoots the
# budget by up to one batch.
BATCH_SHARE = 0.5
# Work an explanation adds, in planned tokens per token of the explained text's windows (detector.explanation: one
# SAE encode per window and the splits over its active features, on the inference thread); admission counts it like
# any other work. Measured 2.06 (`python -m probeguard.loadtest.explain_bench --repeats 3`, golden corpus, probeguard-
# base 0.12.1, 1 thread, 2-core x86_64 AVX-512 box, 2026-12-07: p50 35.4 -> 63.2 ms per text).
EXPLAIN_WORK_PER_TOKEN = 2.0
T = TypeVar("T")


@dataclass
class Job:
    detector: Detector  # the detector that tokenized these texts; a batch never mixes detectors (reload)
    texts: list[str]
    encoded: list[EncodedText]
    tokens: int  # unpadded: what the queue's memory bound counts
    lengths: list[int]  # row lengths of its windows
    work: float  # planned tokens of its forward passes alone (padding and per-call overhead): what waiting counts
    future: asyncio.Future[list[Detection]]
    deadline: float
    explain: list[bool]  # per text: add its explanation
    explain_work: float = 0.0  # the explanations' share of `work` (EXPLAIN_WORK_PER_TOKEN x their window tokens)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    items: int
    tokens: int
    inference_s: float
    waits_s: list[float]


class ThroughputMeter:
    """Backend speed in planned tokens (padding and per-call overhead included, detector.batching) per second, on
    recent batches: decayed totals, so a slow long batch weighs by its duration (an average of per-batch rates
    overrated the backend: 581 vs a true 381 tokens/s, quick short batches outvoting slow long ones)."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay  # per batch; 0.9 keeps roughly the last ten batches
        self._tokens = 0.0
        self._seconds = 0.0
        self.tokens_per_s: float | None = None  # None until the first batch has run

    def seed(self, tokens: float, seconds: float) -> None:
        """Start from a measurement taken before serving (detector.calibrate), so the first requests' waits are
        estimated too; real batches outweigh it within a few batches."""
        self._tokens = self._seconds = 0.0
        self.observe(tokens, seconds)

    def observe(self, tokens: float, seconds: float) -> None:
        self._tokens = self.decay * self._tokens + tokens
        self._seconds = self.decay * self._seconds + max(seconds, 1e-6)
        self.tokens_per_s = self._tokens / self._seconds


class MicroBatcher:
    def __init__(
        self,
        wait_s: float,
        queue_tokens: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        queue_timeout_s: float = 10.0,
        latency_budget_s: float = 0.5,
        answer_deadline_s: float = 1.0,
    ) -> None:
        self.latency_budget_s = latency_budget_s
        self.answer_deadline_s = answer_deadline_s
        self.meter = ThroughputMeter()
        self._running_work = 0.0
        self._queued_work = 0.0
        self._running_since = 0.0
        self.queue_timeout_s = queue_timeout_s
        self.wait_s = wait_s
        self.queue_tokens = queue_tokens
        self._on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._queued_tokens = 0
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probeguard-inference")
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.draining = False

    @property
    def depth_tokens(self) -> int:
        return self._queued_tokens

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._in_flight > 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="probeguard-batcher")

    def estimated_wait_s(self) -> float:
        """Seconds a request arriving now would wait before its batch starts: queued work plus what is left of the
        running batch, over the measured rate (0 before the first batch has been measured)."""
        rate = self.meter.tokens_per_s
        if rate is None:
            return 0.0
        running = max(0.0, self._running_work - rate * (time.perf_counter() - self._running_since))
        return (self._queued_work + (running if self._in_flight else 0.0)) / rate

    def _refusal(self, reason: str, bound: str, excess_s: float) -> QueueFullError:
        retry = max(1, math.ceil(excess_s))  # until the work ahead has shrunk by the excess
        return QueueFullError(f"{reason}; retry in {retry} s", retry_after_s=retry, reason=bound)

    def admit(self, wait: float | None = None) -> float:
        """Raise QueueFullError (429) when the estimated wait (given, or estimated now) exceeds the latency budget;
        else return it. Cheap: called before a request is even tokenized, and again when it is queued."""
        if self.draining:
            raise DrainingError("the service is shutting down")
        wait = self.estimated_wait_s() if wait is None else wait
        if wait > self.latency_budget_s and self.busy:
            raise self._refusal(f"estimated wait {wait:.2f} s exceeds the {self.latency_budget_s:g} s budget",
                                "wait_budget", wait - self.latency_budget_s)  # fmt: skip
        return wait

    def admit_answer(self, wait: float, work: float) -> None:
        """Raise QueueFullError (429) when the estimated answer time (the wait plus this request's own planned work
        over the measured rate) exceeds the answer deadline while others are queued or running. A request that alone
        takes longer still runs on an idle service; under load the longest texts are refused first."""
        rate = self.meter.tokens_per_s
        if rate is None or not self.busy:
            return
        answer = wait + work / rate
        if answer > self.answer_deadline_s:
            raise self._refusal(f"estimated answer in {answer:.2f} s exceeds the {self.answer_deadline_s:g} s "
                                "deadline", "answer_deadline", answer - self.answer_deadline_s)  # fmt: skip

    async def submit(
        self, detector: Detector, texts: list[str], encoded: list[EncodedText], explain: list[bool] | None = None
    ) -> list[Detection]:
        """Queue the texts; `explain[i]` asks for text i's explanation (its work is counted in admission)."""
        explain = explain if explain is not None else [False] * len(texts)
        wait = self.admit()
        tokens = sum(len(e.ids) for e in encoded)
        if self._queued_tokens + tokens > self.queue_tokens and self._queue:
            raise self._refusal(f"queue holds {self._queued_tokens} tokens; limit {self.queue_tokens}",
                                "queue_tokens", wait - self.latency_budget_s)  # fmt: skip
        lengths = detector.window_lengths(encoded)
        explained = [e for e, wanted in zip(encoded, explain, strict=True) if wanted]
        explain_work = EXPLAIN_WORK_PER_TOKEN * sum(detector.window_lengths(explained))
        work = detector.batch_cost(lengths) + explain_work
        self.admit_answer(wait, work)
        future = asyncio.get_running_loop().create_future()
        job = Job(detector, texts, encoded, tokens, lengths, work, future,
                  deadline=time.perf_counter() + self.queue_timeout_s, explain=list(explain),
                  explain_work=explain_work)  # fmt: skip
        self._queue.append(job)
        self._queued_tokens += tokens
        self._queued_work += job.work
        self._wake.set()
        return await job.future

    async def run_exclusive(self, fn: Callable[[], T], work: float) -> T:
        """Run `fn` (work that is not a detect batch: the console's layer trace) on the inference thread, admitted
        like a request of `work` planned tokens: 429 over the wait budget or the answer deadline, and counted in the
        wait every later request is admitted against until it is done."""
        wait = self.admit()
        self.admit_answer(wait, work)
        self._queued_work += work
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._in_flight -= 1
            self._queued_work = max(0.0, self._queued_work - work)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                first = self._queue[0]
                deadline = first.enqueued + self.wait_s
                budget = first.detector.settings.batch_tokens
                while self._queued_tokens < budget and time.perf_counter() < deadline:
                    await asyncio.sleep(max(0.0, min(deadline - time.perf_counter(), 0.001)))
                jobs, work = self._take()
                if not jobs:
                    continue
                self._in_flight += 1
                self._running_work = work
                self._running_since = time.perf_counter()
                try:
                    await self._run(loop, jobs)
                finally:
                    self._in_flight -= 1

    def _cost_with_next(self, jobs: list[Job], lengths: list[int]) -> float | None:
        """Planned forward-pass work of the batch if the next queued job joins it (explanations apart); None when it
        may not (over the limit, or a reload happened between them: the next batch takes the rest)."""
        nxt = self._queue[0]
        if not jobs:
            return nxt.work - nxt.explain_work
        detector = jobs[0].detector
        if nxt.detector is not detector:
            return None
        cost = detector.batch_cost([*lengths, *nxt.lengths])
        return cost if cost <= self.batch_work_limit(detector) else None

    def batch_work_limit(self, detector: Detector) -> float:
        """Most planned tokens one batch takes: the detector's budget, and no more than the measured rate scores in
        BATCH_SHARE of the latency budget. A request waits up to the budget for its batch to start, then for its whole
        batch: so it is answered within (1 + BATCH_SHARE) x the budget, unless it alone is longer."""
        rate = self.meter.tokens_per_s
        limit = float(detector.settings.batch_tokens)
        return limit if rate is None else min(limit, rate * self.latency_budget_s * BATCH_SHARE)

    def _take(self) -> tuple[list[Job], float]:
        """The next batch and its planned work (the running batch's share of the wait estimate)."""
        jobs: list[Job] = []
        lengths: list[int] = []
        work = explain_work = 0.0
        while self._queue and (cost := self._cost_with_next(jobs, lengths)) is not None:
            job = self._queue.popleft()
            self._queued_tokens -= job.tokens
            self._queued_work = self._queued_work - job.work if self._queue else 0.0  # no float drift when empty
            if job.future.done():  # cancelled: the client went away
                continue
            if time.perf_counter() > job.deadline:  # its client has most likely given up: answer, do not run
                job.future.set_exception(QueueTimeoutError(f"waited over {self.queue_timeout_s:g} s in the queue"))
                continue
            jobs.append(job)
            lengths.extend(job.lengths)
            explain_work += job.explain_work
            work = cost + explain_work
        return jobs, work

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        encoded = [e for j in jobs for e in j.encoded]
        explain = [e for j in jobs for e in j.explain]
        started = time.perf_counter()
        waits = [started - j.enqueued for j in jobs]
        detect = jobs[0].detector.detect_encoded
        try:
            results = await loop.run_in_executor(self._executor, detect, texts, encoded, None, explain)
        except Exception as exc:  # every failure goes to the waiting requests, typed by the error table
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        at = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[at : at + len(job.texts)])
            at += len(job.texts)
        elapsed = time.perf_counter() - started
        self.meter.observe(self._running_work, elapsed)
        if self._on_batch is not None:
            self._on_batch(BatchStats(len(jobs), sum(j.tokens for j in jobs), elapsed, waits))

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new work and wait for queued and running batches; True if everything finished."""
        self.draining = True
        deadline = time.perf_counter() + timeout_s
        while self.busy and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        return not self.busy

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(DrainingError("the service stopped before this request ran"))
        self._executor.shutdown(wait=False, cancel_futures=True)
