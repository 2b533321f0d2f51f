"""Forward-pass planning: split windows into passes that cost the least padded compute under one token budget.

A dense backend pays rows x (longest row, with its attention) per pass plus a fixed per-call overhead. Fitted on the
default bundle's ONNX graph, one CPU thread, single rows of 17-511 tokens: t = 0.825 ms x L x (1 + L / 730) + 16.7 ms,
i.e. a call costs ~20 tokens of compute and a 511-token row ~1.7 times its length. So one long window batched with
short ones wastes far more than it saves: 2 x 512 + 3 x 138 + 6 x 27 tokens took 7.7 s in one padded pass and 2.2 s
one window at a time. With rows sorted longest first, the best split is a partition into runs of neighbours, found
exactly by dynamic programming. Costs are in token-equivalents of compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

MAX_ROWS_PER_PASS = 64  # bounds the planner's work; a pass of 64 rows is past any batching gain on CPU


@dataclass(frozen=True)
class PassCost:
    pads: bool  # True: a pass costs rows x longest row; False: the sum of its rows (packed/varlen backends)
    call_overhead_tokens: int  # fixed cost of one forward call, in tokens of compute
    max_batch: int | None  # most rows in one pass; None = bounded by the budget only
    attention_tokens: int | None = None  # L0: a row of L tokens costs L x (1 + L / L0); None = linear rows

    def row(self, length: int) -> float:
        return length * (1.0 + length / self.attention_tokens) if self.attention_tokens else float(length)

    def work(self, lengths: Sequence[int]) -> float:
        """Compute of one pass over rows of these lengths, without the call overhead."""
        if not lengths:
            return 0.0
        return len(lengths) * self.row(max(lengths)) if self.pads else sum(self.row(n) for n in lengths)

    def of(self, lengths: Sequence[int]) -> float:
        """Cost of one pass over rows of these lengths, overhead included."""
        return self.work(lengths) + self.call_overhead_tokens if lengths else 0.0


def plan_passes(lengths: Sequence[int], budget: float, cost: PassCost) -> tuple[list[int], float]:
    """Rows sorted longest first -> (rows per pass, in order; total cost). A row over the budget runs alone."""
    if any(a < b for a, b in pairwise(lengths)):
        raise ValueError("lengths must be sorted longest first")
    n = len(lengths)
    cap = min(cost.max_batch or MAX_ROWS_PER_PASS, MAX_ROWS_PER_PASS)
    best = [0.0] + [-1.0] * n  # best[i]: least cost of the first i rows
    cut = [0] * (n + 1)  # cut[i]: where the last pass of that best plan starts
    for i in range(1, n + 1):
        for j in range(i - 1, max(-1, i - 1 - cap), -1):  # last pass = rows j..i-1, longest is lengths[j]
            rows = i - j
            work = cost.work(lengths[j:i])
            if rows > 1 and work > budget:
                break  # more rows only cost more
            total = best[j] + work + cost.call_overhead_tokens
            if best[i] < 0 or total < best[i]:
                best[i], cut[i] = total, j
    sizes: list[int] = []
    i = n
    while i > 0:
        sizes.append(i - cut[i])
        i = cut[i]
    return sizes[::-1], best[n]
