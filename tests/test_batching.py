"""Forward-pass planning (detector.batching): least padded cost under the budget, checked against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from probeguard.detector.batching import PassCost, plan_passes

CPU = PassCost(pads=True, call_overhead_tokens=16, max_batch=None)


def _brute_force(lengths: list[int], budget: int, cost: PassCost) -> int:
    best = None
    n = len(lengths)
    for cuts in itertools.product([False, True], repeat=n - 1):
        groups, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                groups.append(lengths[start:i])
                start = i
        groups.append(lengths[start:])
        if any(len(g) > 1 and cost.work(g) > budget for g in groups):
            continue
        total = sum(cost.of(g) for g in groups)
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(30))
def test_plan_is_optimal_and_within_budget(seed):
    rng = random.Random(seed)
    lengths = sorted((rng.choice([18, 27, 66, 138, 300, 512]) for _ in range(rng.randint(1, 9))), reverse=True)
    cost = PassCost(
        pads=seed % 3 != 0,
        call_overhead_tokens=rng.choice([0, 16, 512]),
        max_batch=None,
        attention_tokens=rng.choice([None, 730]),
    )
    budget = rng.choice([512, 1024, 4096])
    sizes, total = plan_passes(lengths, budget, cost)
    assert sum(sizes) == len(lengths)
    at = 0
    for size in sizes:
        group = lengths[at : at + size]
        assert size == 1 or cost.work(group) <= budget
        at += size
    assert total == pytest.approx(_brute_force(lengths, budget, cost))


def test_long_rows_are_not_padded_with_short_ones_on_cpu():
    sizes, total = plan_passes([512, 512, 138, 138, 138, 27, 27, 27, 27, 27, 27], 4096, CPU)
    assert sizes == [2, 3, 6] and total == 2 * 512 + 3 * 138 + 6 * 27 + 3 * 16
    measured = PassCost(pads=True, call_overhead_tokens=20, max_batch=None, attention_tokens=730)
    assert measured.row(511) == pytest.approx(511 * (1 + 511 / 730))


def test_max_batch_and_unsorted_input():
    sizes, _ = plan_passes([20] * 10, 4096, PassCost(pads=True, call_overhead_tokens=1000, max_batch=4))
    assert sizes == [4, 4, 2]
    with pytest.raises(ValueError, match="sorted"):
        plan_passes([10, 20], 4096, CPU)
