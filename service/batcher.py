"""Micro-batcher: admitted requests are cut into steps (service.admission), and steps are grouped earliest due first up
to the detector's padding-aware token budget (`DetectorSettings.batch_tokens`) and a share of the latency budget,
scored off the event loop in one inference thread, and decoded (spans, categories, explanations) on a second thread
while the next batch runs. A request larger than one batch (a document) is scored across several batches between
other requests' steps, so its own cost never has to fit one batch and never blocks the others. Admission answers 429
at once, with a Retry-After, when a request would finish after its size-scaled answer bound or make an admitted one
late, or when the queue's token bound is full; a request whose client has gone (its future cancelled) leaves the
schedule before inference."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from probeguard.detector import Detection, Detector
from probeguard.detector.pipeline import TextScores
from probeguard.detector.tokenize import EncodedText, Window
from probeguard.service.admission import (
    Schedule,
    ThroughputMeter,
    answer_bound_s,
    is_bulk,
    lane_wait_allowance,
    plan_dues,
    size_class,
)
from probeguard.service.errors import DrainingError, QueueFullError, QueueTimeoutError
from probeguard.service.jobs import BatchStats, Job, JobStep, Scored

# Share of the latency budget one batch may last. Smaller keeps answers closer to their bounds; larger amortises the
# per-call cost (~20 tokens of compute, detector/batching.py) over more texts.
BATCH_SHARE = 0.5
# Work an explanation adds, in planned tokens per token of the explained text's windows (detector.explanation: one
# SAE encode per window and the splits over its active features, on the decode thread beside the next batch);
# admission counts it as if it ran on the inference thread (it shares the same cores). Measured 2.06 (`python -m
# probeguard.loadtest.explain_bench --repeats 3`, golden corpus, probeguard-base 0.12.1, 1 thread, 2-core x86_64
# AVX-512 box, 2026-12-07: p50 35.4 -> 63.2 ms per text).
EXPLAIN_WORK_PER_TOKEN = 2.0
# What an explained token holds until its request is answered, in plain tokens of the queue's memory bound: its served
# layer row (d_model floats: 2.5 KB at Gemma 3 270M) against ~100 bytes of ids, offsets and label scores.
EXPLAIN_MEMORY_PER_TOKEN = 25
T = TypeVar("T")


# (size class, admitted, answer bound in seconds): called for every admission decision.
AdmissionHook = Callable[[str, bool, float], None]


class MicroBatcher:
    def __init__(
        self,
        wait_s: float,
        queue_tokens: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        queue_timeout_s: float = 10.0,
        latency_budget_s: float = 0.5,
        answer_slowdown: float = 2.0,
        on_admission: AdmissionHook | None = None,
    ) -> None:
        self.latency_budget_s = latency_budget_s
        self.answer_slowdown = answer_slowdown
        self.queue_timeout_s = queue_timeout_s
        self.wait_s = wait_s
        self.queue_tokens = queue_tokens
        self.meter = ThroughputMeter()
        self._on_batch = on_batch
        self._on_admission = on_admission
        self._schedule: Schedule[JobStep] = Schedule()
        self._seq = itertools.count()
        self._queued_tokens = 0
        self._running_work = 0.0
        self._running_since = 0.0
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probeguard-inference")
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probeguard-decode")
        self._decoding = 0  # batches whose requests are being decoded
        self._task: asyncio.Task[None] | None = None
        self.draining = False

    @property
    def depth_tokens(self) -> int:
        return self._queued_tokens

    @property
    def busy(self) -> bool:
        return bool(self._schedule) or self._in_flight > 0 or self._decoding > 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="probeguard-batcher")

    def _running_left(self, rate: float) -> float:
        """Planned work left of the running batch, at `rate`."""
        if not self._in_flight:
            return 0.0
        return max(0.0, self._running_work - rate * (time.perf_counter() - self._running_since))

    def estimated_wait_s(self) -> float:
        """Seconds all admitted work would take at the measured rate (0 before the first measurement): how far
        behind the service is. A request's own wait depends on its deadline: earlier-due steps run first."""
        rate = self.meter.tokens_per_s
        if rate is None:
            return 0.0
        return (self._schedule.work + self._running_left(rate)) / rate

    def batch_work_limit(self, detector: Detector) -> float:
        """Most planned tokens one batch (and one step) takes: the detector's budget, and no more than the measured
        rate scores in BATCH_SHARE of the latency budget. A single window over it is a step of its own."""
        rate = self.meter.tokens_per_s
        limit = float(detector.settings.batch_tokens)
        return limit if rate is None else min(limit, rate * self.latency_budget_s * BATCH_SHARE)

    def _refusal(self, reason: str, message: str, late_s: float) -> QueueFullError:
        retry = max(1, math.ceil(late_s))  # until the work ahead has shrunk by that much
        return QueueFullError(f"{message}; retry in {retry} s", retry_after_s=retry, reason=reason)

    def _admit(self, steps: list[JobStep], size: str | None, tokens: int) -> float:
        """Add the steps of one request to the schedule, or raise QueueFullError (429): the queue's token bound is
        full, or (rate measured, service busy) it would be answered after its bound (queued behind a document on the
        bulk lane, or behind earlier-due work), or it would make an admitted request late. Alone on an idle service
        any request runs. `size`: the request's size class (None: not a request). Returns its answer bound."""
        if self.draining:
            raise DrainingError("the service is shutting down")
        bound = self.answer_bound_s(sum(s.work for s in steps))
        rate = self.meter.tokens_per_s
        refusal = None
        if self._queued_tokens + tokens > self.queue_tokens and self.busy:
            refusal = self._refusal("queue_tokens", f"queue holds {self._queued_tokens} tokens; limit "
                                    f"{self.queue_tokens}", self.estimated_wait_s())  # fmt: skip
        elif rate is not None and self.busy:
            start = time.perf_counter() + self._running_left(rate) / rate
            own, others = self._schedule.lateness_s(steps, start, rate)
            if steps[0].bulk:  # waiting for the bulk lane behind other documents longer than it may
                own_s = sum(s.work for s in steps) / rate
                wait = self._lane_free_at() - steps[0].job.enqueued
                own = max(own, wait - lane_wait_allowance(own_s, self.answer_slowdown))
            if own > 0:
                refusal = self._refusal("answer_deadline", f"estimated answer {own:.2f} s after its {bound:.2f} s "
                                        "bound", own)  # fmt: skip
            elif others > 0:
                refusal = self._refusal("admitted_deadline", f"admitting it would make an admitted request "
                                        f"{others:.2f} s late", others)  # fmt: skip
        if self._on_admission is not None and size is not None:
            self._on_admission(size, refusal is None, bound)
        if refusal is not None:
            raise refusal
        self._schedule.add(steps)
        self._queued_tokens += tokens
        self._wake.set()
        return bound

    def _dues(self, works: list[float], arrived: float, bulk: bool) -> list[float]:
        rate = self.meter.tokens_per_s
        if rate is None:  # nothing measured yet: no estimate, first come first served
            return [arrived + self.latency_budget_s] * len(works)
        start = max(arrived, self._lane_free_at()) if bulk else arrived
        return plan_dues(works, start, rate, self.latency_budget_s, self.answer_slowdown,
                         BATCH_SHARE * self.latency_budget_s)  # fmt: skip

    def _lane_free_at(self) -> float:
        rate = self.meter.tokens_per_s
        return self._schedule.lane_free_at(time.perf_counter(), rate, self.answer_slowdown) if rate else float("-inf")

    def answer_bound_s(self, work: float) -> float:
        """The answer bound of a request of `work` planned tokens at the measured rate (the latency budget before
        any measurement)."""
        rate = self.meter.tokens_per_s
        if rate is None:
            return self.latency_budget_s
        return answer_bound_s(work / rate, self.latency_budget_s, self.answer_slowdown)

    async def submit(
        self, detector: Detector, texts: list[str], encoded: list[EncodedText], explain: list[bool] | None = None,
        arrived: float | None = None,
    ) -> Scored:  # fmt: skip
        """Admit and queue the texts (one request, arrived at `arrived`, default now); answered when all their
        windows have been scored. `explain[i]` asks for text i's explanation (its work is counted in admission)."""
        explain = explain if explain is not None else [False] * len(texts)
        size = size_class(sum(len(e.ids) for e in encoded))
        windows = detector.windows_of(encoded)
        limit = self.batch_work_limit(detector)
        fits = detector.batch_cost(detector.row_lengths(windows)) <= limit
        groups = [windows] if fits else detector.plan_passes(windows, max(1, int(limit)))
        works = [detector.rows_work(detector.row_lengths(g)) for g in groups]
        explained = [w for w in windows if explain[w.text_index]]
        works[-1] += EXPLAIN_WORK_PER_TOKEN * sum(detector.row_lengths(explained))  # explained when the last runs
        held = sum(
            len(e.ids) * (1 + EXPLAIN_MEMORY_PER_TOKEN * wanted) for e, wanted in zip(encoded, explain, strict=True)
        )
        job = Job(detector, texts, encoded, detector.start_scores(encoded, explain), held,
                  asyncio.get_running_loop().create_future(), expires=0.0, steps_left=len(groups),
                  enqueued=arrived if arrived is not None else time.perf_counter())  # fmt: skip
        rate = self.meter.tokens_per_s
        bulk = rate is not None and is_bulk(sum(works) / rate, self.latency_budget_s)
        dues = self._dues(works, job.enqueued, bulk)
        job.expires = dues[-1] + self.queue_timeout_s
        steps = [JobStep(due, next(self._seq), work, bulk, job, group)
                 for due, work, group in zip(dues, works, groups, strict=True)]  # fmt: skip
        bound = self._admit(steps, size, held)
        job.future.add_done_callback(lambda f: self._forget(job) if f.cancelled() else None)
        return Scored(await job.future, bound)

    async def run_exclusive(self, fn: Callable[[], T], work: float) -> T:
        """Run `fn` (work that is not a detect batch: the console's layer trace) on the inference thread, alone in its
        batch, admitted and scheduled like a one-step request of `work` planned tokens."""
        job = Job(None, [], [], [], 0, asyncio.get_running_loop().create_future(), expires=0.0, steps_left=1,
                  exclusive=fn)  # fmt: skip
        (due,) = self._dues([work], job.enqueued, False)
        job.expires = due + self.queue_timeout_s
        self._admit([JobStep(due, next(self._seq), work, False, job)], None, 0)
        return await job.future

    def _forget(self, job: Job) -> None:
        """Take a finished, failed or abandoned request's remaining steps off the schedule."""
        if job.steps_left > 0:
            self._schedule.remove([s for s in self._schedule if s.job is job])
            job.steps_left = 0
            self._queued_tokens -= job.tokens

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._schedule:
                first = self._schedule.peek().job
                if first.exclusive is None and self.wait_s > 0:
                    deadline = first.enqueued + self.wait_s
                    budget = first.detector.settings.batch_tokens
                    while self._queued_tokens < budget and time.perf_counter() < deadline:
                        await asyncio.sleep(max(0.0, min(deadline - time.perf_counter(), 0.001)))
                steps = self._take()
                if not steps:
                    continue
                self._in_flight += 1
                self._running_work = sum(s.work for s in steps)
                self._running_since = time.perf_counter()
                try:
                    await self._run(loop, steps)
                finally:
                    self._in_flight -= 1

    def _take(self) -> list[JobStep]:
        """The next batch: steps earliest due first, one detector, its forward passes (padding and per-call overhead
        included) and explanations within the batch work limit (an exclusive step runs alone); steps of requests
        that are gone or expired leave the schedule here."""
        steps: list[JobStep] = []
        lengths: list[int] = []
        extra = 0.0  # steps' work beyond their rows (explanations)
        while self._schedule:
            step = self._schedule.peek()
            job = step.job
            if job.future.done() or time.perf_counter() > job.expires:
                self._schedule.pop()
                if not job.future.done():  # its client has most likely given up: answer, do not run
                    job.future.set_exception(QueueTimeoutError(f"not answered {self.queue_timeout_s:g} s after its "
                                                               "bound"))  # fmt: skip
                self._forget(job)
                continue
            if job.exclusive is not None or (steps and steps[0].job.exclusive is not None):
                if not steps:
                    steps.append(self._schedule.pop())
                break
            detector = job.detector
            if steps and detector is not steps[0].job.detector:
                break
            rows = detector.row_lengths(step.windows)
            step_extra = step.work - detector.rows_work(rows)
            if steps and detector.batch_cost([*lengths, *rows]) + extra + step_extra > self.batch_work_limit(detector):
                break
            steps.append(self._schedule.pop())
            lengths.extend(rows)
            extra += step_extra
        return steps

    async def _run(self, loop: asyncio.AbstractEventLoop, steps: list[JobStep]) -> None:
        started = time.perf_counter()
        jobs: dict[int, Job] = {}
        for step in steps:
            jobs.setdefault(id(step.job), step.job)
        waits = [started - j.enqueued for j in jobs.values() if j.started is None]
        for job in jobs.values():
            job.started = job.started or started
        counts = {key: sum(1 for s in steps if s.job is job) for key, job in jobs.items()}
        finishing = [job for key, job in jobs.items() if job.steps_left == counts[key]]
        first = steps[0]
        try:
            if first.job.exclusive is not None:
                results = [await loop.run_in_executor(self._executor, first.job.exclusive)]
            else:
                await loop.run_in_executor(self._executor, self._score, steps)
        except Exception as exc:  # every failure goes to the waiting requests, typed by the error table
            for job in jobs.values():
                if not job.future.done():
                    job.future.set_exception(exc)
                self._forget(job)
            return
        for key, job in jobs.items():
            if not job.future.done():  # else abandoned while it ran: already taken off the schedule
                job.steps_left -= counts[key]
        finishing = [job for job in finishing if not job.future.done()]
        if first.job.exclusive is not None:
            self._answer(finishing, results)
            return
        elapsed = time.perf_counter() - started
        self.meter.observe(self._running_work, elapsed)
        if self._on_batch is not None:
            tokens = sum(w.own_end - w.own_start for s in steps for w in s.windows)
            self._on_batch(BatchStats(len(jobs), tokens, elapsed, waits))
        if finishing:  # decoded beside the next batch's forward passes (which release the GIL)
            self._decoding += 1
            loop.create_task(self._decode(loop, finishing))

    async def _decode(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        """Spans, categories and explanations of requests whose every window has been scored, on the decode thread."""
        try:
            results = await loop.run_in_executor(self._decoder, self._finish, jobs)
        except Exception as exc:  # typed by the error table, like an inference failure
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
                self._queued_tokens -= job.tokens
            return
        finally:
            self._decoding -= 1
        self._answer(jobs, results)

    def _answer(self, jobs: list[Job], results: list[Any]) -> None:
        for job, result in zip(jobs, results, strict=True):
            self._queued_tokens -= job.tokens
            if not job.future.done():
                job.future.set_result(result)

    @staticmethod
    def _score(steps: list[JobStep]) -> None:
        """On the inference thread: score the steps' windows in one call (passes planned across requests)."""
        encoded: list[EncodedText] = []
        scores: list[TextScores] = []
        windows: list[Window] = []
        base: dict[int, int] = {}
        for step in steps:
            job = step.job
            if id(job) not in base:
                base[id(job)] = len(encoded)
                encoded.extend(job.encoded)
                scores.extend(job.scores)
            windows.extend(replace(w, text_index=w.text_index + base[id(job)]) for w in step.windows)
        steps[0].job.detector.score_windows(windows, encoded, scores)

    @staticmethod
    def _finish(jobs: list[Job]) -> list[list[Detection]]:
        return [job.detector.finish(job.texts, job.encoded, job.scores) for job in jobs]

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
        for step in self._schedule:
            job = step.job
            if not job.future.done():
                job.future.set_exception(DrainingError("the service stopped before this request ran"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._decoder.shutdown(wait=False, cancel_futures=True)
