"""Fit the forward pass's cost model (`detector.batching.PassCost`) to this box and graph, from a few timed rows.

The backends ship constants fitted once (fp32 graph, one 2-core box: a call costs ~20 tokens of compute, a row of L
tokens L x (1 + L / 730)). Elsewhere the shape differs (on an AVX2 box without VNNI, single rows of 17-511 tokens:
fp32 L0 ~2,150 and 12 tokens per call, int8 L0 ~1,400 and 8), and on a GPU the constants were never measured. The
service divides planned work by a measured rate to estimate waits, so a wrong shape misjudges long rows against short
ones (int8 there: a 511-token row planned at 23.8x a 17-token one, measured 28.3x). Timing one row at each of a few
lengths and fitting t(L) = a L + b L^2 + c with a > 0 and b, c >= 0 gives PassCost(call_overhead_tokens = c / a,
attention_tokens = a / b), in the same token-of-compute units, plus the rate 1 / a to start the service's meter with.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from probeguard.detector.batching import PassCost

# Neutral filler, repeated to the longest row timed: a dense forward pass costs the same whatever the token ids.
CALIBRATION_TEXT = "The committee met on Tuesday to review the quarterly report and agreed on the next steps. "
MAX_OVERHEAD_TOKENS = 100_000  # a per-call cost beyond this means the rows timed were all overhead (tiny hosts)
MIN_ATTENTION_TOKENS = 16  # an L0 below this is a fit to noise, not attention
MAX_RELATIVE_ERROR = 0.25  # a fit that misses a timing by more does not describe this backend (noise, a flat cost)


@dataclass(frozen=True)
class CostFit:
    cost: PassCost  # what the pipeline plans with and the service counts work in
    seconds_per_token: float  # a: seconds per token of compute, i.e. 1 / the backend's rate in those units
    timings: tuple[tuple[int, float], ...]  # (row length incl. special tokens, fastest seconds of the repeats)
    fitted: bool  # False: the timings did not determine a shape (all overhead, or noise); the base cost is kept

    @property
    def work(self) -> float:
        """Planned work of the rows timed, each as its own pass (call overhead included)."""
        return sum(self.cost.of([n]) for n, _ in self.timings)

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.timings)

    def to_dict(self) -> dict[str, object]:
        return {
            "fitted": self.fitted,
            "call_overhead_tokens": self.cost.call_overhead_tokens,
            "attention_tokens": self.cost.attention_tokens,
            "ms_per_token": round(self.seconds_per_token * 1000, 4),
            "rows": [n for n, _ in self.timings],
            "ms": [round(t * 1000, 2) for _, t in self.timings],
        }


def calibration_lengths(window_tokens: int) -> tuple[int, ...]:
    """Row lengths to time: short, quarter, five eighths and a full window (the longest row a pass ever holds)."""
    return tuple(sorted({max(8, window_tokens // 32), window_tokens // 4, window_tokens * 5 // 8, window_tokens}))


def time_rows(run_row: Callable[[int], None], lengths: Sequence[int], repeats: int) -> list[tuple[int, float]]:
    """Fastest of `repeats` timings of one row per length (lengths interleaved, so drift spreads over all of them)."""
    if repeats < 1 or not lengths:
        raise ValueError("time_rows needs at least one length and one repeat")
    best = dict.fromkeys(lengths, float("inf"))
    for _ in range(repeats):
        for n in lengths:
            started = time.perf_counter()
            run_row(n)
            best[n] = min(best[n], time.perf_counter() - started)
    return [(n, best[n]) for n in lengths]


def _least_squares(lengths: np.ndarray, seconds: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) of t = a L + b L^2 + c with every coefficient >= 0 and a > 0, least squared error; zeros if none."""
    columns = {"a": lengths, "b": lengths**2, "c": np.ones_like(lengths)}
    best: tuple[float, dict[str, float]] | None = None
    for extra in itertools.chain.from_iterable(itertools.combinations("bc", k) for k in range(3)):
        names = ("a", *extra)
        design = np.stack([columns[n] for n in names], axis=1)  # [rows, terms]
        coef, *_ = np.linalg.lstsq(design, seconds, rcond=None)
        if coef[0] <= 0 or (coef < 0).any():
            continue
        error = float(np.sum((design @ coef - seconds) ** 2))
        if best is None or error < best[0]:
            best = (error, dict(zip(names, coef.tolist(), strict=True)))
    if best is None:
        return 0.0, 0.0, 0.0
    return best[1]["a"], best[1].get("b", 0.0), best[1].get("c", 0.0)


def fit_pass_cost(timings: Sequence[tuple[int, float]], base: PassCost) -> CostFit:
    """The cost model these timings imply, keeping `base`'s padding and batch bound; `base` itself when they do not
    determine one (then the rate is still measured: total seconds over the base cost's work)."""
    lengths = np.array([float(n) for n, _ in timings])
    seconds = np.array([t for _, t in timings])
    a, b, c = _least_squares(lengths, seconds)
    overhead = c / a if a > 0 else float("inf")
    error = np.max(np.abs(a * lengths + b * lengths**2 + c - seconds) / seconds)
    if a <= 0 or overhead > MAX_OVERHEAD_TOKENS or error > MAX_RELATIVE_ERROR:
        kept = CostFit(base, 0.0, tuple(timings), fitted=False)
        return replace(kept, seconds_per_token=kept.seconds / kept.work)
    attention = max(round(a / b), MIN_ATTENTION_TOKENS) if b > 0 else None
    cost = replace(base, call_overhead_tokens=round(overhead), attention_tokens=attention)
    return CostFit(cost, a, tuple(timings), fitted=True)
