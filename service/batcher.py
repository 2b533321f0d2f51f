"""Micro-batcher: concurrent requests are grouped up to the detector's padding-aware token budget
(`DetectorSettings.batch_tokens`, the same budget that packs windows into forward passes) or a short wait, scored
off the event loop in one inference thread, and answered. A full queue answers 429; a request whose client has gone
(its future cancelled) is dropped before inference."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from detector import Detection, Detector
from detector.tokenize import EncodedText
from service.errors import DrainingError, QueueFullError, QueueTimeoutError


@dataclass
class Job:
    detector: Detector  # the detector that tokenized these texts; a batch never mixes detectors (reload)
    texts: list[str]
    encoded: list[EncodedText]
    tokens: int  # unpadded: what the queue limit counts
    lengths: list[int]  # row lengths of its windows: what a forward pass costs
    future: asyncio.Future[list[Detection]]
    deadline: float
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    items: int
    tokens: int
    inference_s: float
    waits_s: list[float]


class MicroBatcher:
    def __init__(
        self,
        wait_s: float,
        queue_tokens: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        queue_timeout_s: float = 10.0,
    ) -> None:
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

    async def submit(self, detector: Detector, texts: list[str], encoded: list[EncodedText]) -> list[Detection]:
        if self.draining:
            raise DrainingError("the service is shutting down")
        tokens = sum(len(e.ids) for e in encoded)
        if self._queued_tokens + tokens > self.queue_tokens and self._queue:
            raise QueueFullError(f"queue holds {self._queued_tokens} tokens; limit {self.queue_tokens}")
        future = asyncio.get_running_loop().create_future()
        job = Job(detector, texts, encoded, tokens, detector.window_lengths(encoded), future,
                  deadline=time.perf_counter() + self.queue_timeout_s)  # fmt: skip
        self._queue.append(job)
        self._queued_tokens += tokens
        self._wake.set()
        return await job.future

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
                jobs = self._take()
                if not jobs:
                    continue
                self._in_flight += 1
                try:
                    await self._run(loop, jobs)
                finally:
                    self._in_flight -= 1

    def _fits(self, jobs: list[Job], lengths: list[int]) -> bool:
        if not jobs:
            return True
        nxt = self._queue[0]
        if nxt.detector is not jobs[0].detector:
            return False  # a reload happened between these jobs: the next batch takes the rest
        detector = jobs[0].detector
        return detector.batch_cost([*lengths, *nxt.lengths]) <= detector.settings.batch_tokens

    def _take(self) -> list[Job]:
        jobs: list[Job] = []
        lengths: list[int] = []
        while self._queue and self._fits(jobs, lengths):
            job = self._queue.popleft()
            self._queued_tokens -= job.tokens
            if job.future.done():  # cancelled: the client went away
                continue
            if time.perf_counter() > job.deadline:  # its client has most likely given up: answer, do not run
                job.future.set_exception(QueueTimeoutError(f"waited over {self.queue_timeout_s:g} s in the queue"))
                continue
            jobs.append(job)
            lengths.extend(job.lengths)
        return jobs

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        encoded = [e for j in jobs for e in j.encoded]
        started = time.perf_counter()
        waits = [started - j.enqueued for j in jobs]
        try:
            results = await loop.run_in_executor(self._executor, jobs[0].detector.detect_encoded, texts, encoded)
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
        if self._on_batch is not None:
            self._on_batch(BatchStats(len(jobs), sum(j.tokens for j in jobs), time.perf_counter() - started, waits))

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
