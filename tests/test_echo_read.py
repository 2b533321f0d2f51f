"""The echo-read experiment's text doubling and the store view that keeps only the second copy."""

from __future__ import annotations

import numpy as np

from experiments.echo_read.run import BRIDGE, EchoStore, echo_texts


def test_echo_texts_double_what_fits_and_keep_the_copy():
    words = len  # one token per character, for the test
    out, keep = echo_texts(["abc", "x" * 10], words, max_tokens=12)
    assert out == ["abc" + BRIDGE + "abc", "x" * 10] and keep == [3, None]  # 2*10 + 2 > 12: read plainly


class _Store:
    def __init__(self, rows):
        self.rows = rows

    def per_text(self, layer):
        return self.rows

    def __len__(self):
        return len(self.rows)


def test_echo_store_keeps_the_last_tokens():
    rows = [np.arange(8).reshape(8, 1), np.arange(3).reshape(3, 1)]
    view = EchoStore(_Store(rows), [3, None])
    first, second = view.per_text(8)
    assert first[:, 0].tolist() == [5, 6, 7] and second[:, 0].tolist() == [0, 1, 2] and len(view) == 2
