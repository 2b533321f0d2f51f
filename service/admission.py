"""Admission by deadline, fair across request sizes: every request gets an answer bound that grows with its own work,
its windows are scored in steps run earliest deadline first, and it is admitted only while every admitted step can
still meet its deadline at the measured rate.

- A request's bound is `latency_budget + slowdown x own` after it arrived (`own` = its planned work at the measured
  rate; slowdown 2 by default): ~0.55 s for a 26-token message, 1.9 s for a 512-token text (0.7 s of work on one
  CPU thread). The bound has the same wait allowance for every size and
  grows at least as fast as the work, so under load a long request needs no larger gap in the queue than a short one:
  admission is as likely for every size (a bound with a fixed floor refused the long texts first).
- A request is split into steps of at most one batch (most fit one). Step i is due `latency_budget + slowdown x`
  its work so far after the request arrived, planned one batch early (a step is answered when its whole batch ends);
  the last one at its bound. A request whose own work lasts over four latency budgets (a document) starts on the
  bulk lane instead: a virtual clock that runs at 1 / slowdown of the measured rate, documents one after another,
  re-planned from what is left of them when a new one arrives.
  So while short requests keep the service busy a document still gets 1 / slowdown of it, and when they leave it
  gets everything (the schedule is work conserving). A document may wait for the lane up to twice its own time on
  it (its bound grows by as much: `latency_budget + 3 x slowdown x own`); one that would wait longer is refused.
- Admission merges the new steps into the schedule and refuses (429, Retry-After = how late it would run) when any
  step, new or admitted, would finish after its due. A request alone on an idle service always runs.

Sizes covered: every request the input limits accept (PROBEGUARD_MAX_CHARS, 100,000 characters per text, ~30k
tokens; PROBEGUARD_MAX_BODY_BYTES, 1 MiB per body); larger ones are refused with 413 before admission. Size classes
(the soak's and the metrics' `size_class` label) only report; admission never looks at them.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# Upper token bounds of the size classes (the last one is open); the soak's texts are ~26, ~100, ~520 and ~20k tokens.
SIZE_CLASSES: tuple[tuple[str, int | None], ...] = (("short", 64), ("medium", 256), ("long", 2048), ("document", None))
SIZE_CLASS_NAMES = tuple(name for name, _ in SIZE_CLASSES)
# A request whose own work lasts over this many latency budgets is a document to the scheduler: it waits for the bulk
# lane. Shorter ones split over batches (a 512-token text on a CPU) are planned from their arrival like any other.
BULK_BUDGETS = 4.0
# A document may wait for the bulk lane behind others for up to this many times its own time on it, so the lane does
# not idle between documents that arrive while one is scored. 2x soaks (experiments/README.md, "Fair admission"):
# strictly one at a time admitted 1 of 10 documents on the first try, a wait of once its own time 2 of 10.
LANE_QUEUE = 2.0


def size_class(tokens: int) -> str:
    """The size class of a request of `tokens` tokens (all its texts)."""
    for name, upper in SIZE_CLASSES:
        if upper is None or tokens <= upper:
            return name
    raise AssertionError("the last size class is open")  # pragma: no cover


def answer_bound_s(own_s: float, latency_budget_s: float, slowdown: float) -> float:
    """Seconds after arrival a request whose own work takes `own_s` at the measured rate is answered within: the
    latency budget plus `slowdown` times its work, and for a document (`is_bulk`) LANE_QUEUE times that to wait for
    the bulk lane behind documents admitted before it."""
    lane_wait = lane_wait_allowance(own_s, slowdown) if is_bulk(own_s, latency_budget_s) else 0.0
    return latency_budget_s + slowdown * own_s + lane_wait


def lane_wait_allowance(own_s: float, slowdown: float) -> float:
    """How long a document may wait for the bulk lane: LANE_QUEUE times its own time on the lane."""
    return LANE_QUEUE * slowdown * own_s


@dataclass(order=True)
class Step:
    """Part of one request's work: scored in one batch (with other steps), due by `due` (perf_counter seconds)."""

    due: float
    seq: int  # ties: first planned first
    work: float = field(compare=False)  # planned tokens (detector.batching)
    bulk: bool = field(compare=False)  # on the bulk lane (a request split over several batches)


def plan_dues(works: list[float], start: float, rate: float, latency_budget_s: float, slowdown: float,
              batch_s: float) -> list[float]:  # fmt: skip
    """Due times of a request's steps (their planned work, in order): step i is due `latency_budget + slowdown x` the
    work up to and including it after `start` (the arrival, or for a document when the bulk lane is free), so the
    last one at the request's bound. Each is planned `batch_s` (the longest batch) early: a step is answered when its
    whole batch ends, and the others in it run after it."""
    clock, dues = start, []
    for work in works:
        clock += slowdown * work / rate
        dues.append(clock + latency_budget_s - batch_s)
    return dues


def is_bulk(own_s: float, latency_budget_s: float) -> bool:
    """Whether a request goes on the bulk lane: its own work at the measured rate lasts over BULK_BUDGETS latency
    budgets (2 s at the defaults: a ~1,500-token text on one CPU thread)."""
    return own_s > BULK_BUDGETS * latency_budget_s


S = TypeVar("S", bound=Step)


class Schedule(Generic[S]):
    """Admitted steps, earliest due first, and the feasibility test admission runs against them."""

    def __init__(self) -> None:
        self._steps: list[S] = []

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self) -> Iterator[S]:
        return iter(self._steps)

    @property
    def work(self) -> float:
        return sum(s.work for s in self._steps)

    def add(self, steps: Iterable[S]) -> None:
        for step in steps:
            insort(self._steps, step)

    def peek(self) -> S:
        return self._steps[0]

    def pop(self) -> S:
        return self._steps.pop(0)

    def remove(self, steps: Iterable[S]) -> None:
        gone = {id(s) for s in steps}
        self._steps = [s for s in self._steps if id(s) not in gone]

    def lane_free_at(self, now: float, rate: float, slowdown: float) -> float:
        """When the bulk lane would be free if the documents on it went on at its rate (1 / slowdown of `rate`) from
        `now`: re-planned from what is left, so a document ahead of its plan (the service was not busy) frees the lane
        early. -inf when nothing is on it."""
        left = sum(s.work for s in self._steps if s.bulk)
        return now + slowdown * left / rate if left else float("-inf")

    def lateness_s(self, new: list[S], start: float, rate: float) -> tuple[float, float]:
        """How late (seconds past due) the latest of the `new` steps, and the latest admitted step they delay, would
        finish if they joined the schedule and the backend ran every step in due order from `start` at `rate`; <= 0:
        on time (-inf: no such step). Admitted steps due before the first new one are not delayed by it."""
        first, mine = min(new), {id(s) for s in new}
        clock, own, others = start, float("-inf"), float("-inf")
        for step in heapq.merge(self._steps, sorted(new)):
            clock += step.work / rate
            if id(step) in mine:
                own = max(own, clock - step.due)
            elif step > first:
                others = max(others, clock - step.due)
        return own, others


class ThroughputMeter:
    """Backend speed in row work (`Detector.rows_work`: a row's compute without padding or per-call overhead, which
    the measured rate absorbs) per second, on recent batches: decayed totals, so a slow long batch weighs by its
    duration (an average of per-batch rates overrated the backend: 581 vs a true 381 tokens/s, quick short batches
    outvoting slow long ones). A step is planned at its row work, so short requests are not counted at the cost of a
    pass of their own (34 vs 14 tokens for a 12-token text): batched, they cost what their rows add."""

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
