"""Window-max pooling: a short run keeps its score in a long text; padding and partial runs never count."""

from __future__ import annotations

import pytest
import torch

from probeguard.detector.heads.pooling import full_window_max, masked_mean


def _batch(rows: list[list[float]], seq: int, pad: float = 99.0) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.full((len(rows), seq, 1), pad)  # [batch, seq, 1]; padding holds a value that would win if read
    mask = torch.zeros(len(rows), seq, dtype=torch.bool)
    for i, row in enumerate(rows):
        z[i, : len(row), 0] = torch.tensor(row)
        mask[i, : len(row)] = True
    return z, mask


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([0.0] * 18 + [1.0] * 4 + [0.0] * 18, 1.0),  # one full run of four inside forty tokens
        ([0.0, 3.0, 0.0], 1.0),  # shorter than the window: the whole text is the run
        ([8.0] + [0.0] * 20, 2.0),  # a spike on the first token counts as a quarter of a run, never alone
        ([-1.0] * 10, -1.0),
    ],
)
def test_full_window_max(row, expected):
    z, mask = _batch([row, [0.5] * 30], seq=40)  # a second, longer row pads the first
    assert float(full_window_max(z, mask, 4)[0, 0]) == pytest.approx(expected)


def test_a_short_run_is_not_diluted_by_the_text_around_it():
    row = [0.0] * 200 + [2.0] * 8 + [0.0] * 200
    z, mask = _batch([row], seq=len(row))
    assert float(full_window_max(z, mask, 8)[0, 0]) == pytest.approx(2.0)
    assert float(masked_mean(z, mask)[0, 0]) < 0.05
