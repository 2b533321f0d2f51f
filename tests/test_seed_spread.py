"""The seed-spread report: per-source rows, spread over seeds within an arithmetic, gap between seed means."""

from __future__ import annotations

import pytest

from experiments.seed_spread.run import render


def _rows(values: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """{"fp32/0": ..., "fp32/1": ...} from {key: (harmful recall, look-alike FPR)}."""
    return {k: {"threshold": 0.5, "harm": ["positive", r, 10], "twins": ["lookalike", f, 20]} for k, (r, f) in
            values.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("values", "spread", "gap"),
    [
        ({"fp32/0": (0.9, 0.1), "fp32/1": (0.7, 0.1), "int8/0": (0.8, 0.2), "int8/1": (0.8, 0.2)},
         "mean 0.050, max 0.200", "mean 0.050, max 0.100"),
        ({"fp32/0": (0.9, 0.1), "fp32/1": (0.9, 0.1)}, "mean 0.000, max 0.000", None),
    ],
)  # fmt: skip
def test_spread_is_within_an_arithmetic_and_gap_between_seed_means(values, spread, gap):
    text = render(_rows(values))
    assert "| harm | positive | 10 | " in text and "| twins | lookalike | 20 | " in text
    assert f"Seed spread (max - min over seeds, per source and arithmetic): {spread}." in text
    assert (f"seed means, per source: {gap}." in text) if gap else ("seed means" not in text)
