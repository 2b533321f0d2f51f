from __future__ import annotations

import itertools

import pytest

from probeguard.detector.tokenize import HostTokenizer, plan_windows, whole_window


@pytest.mark.parametrize(
    ("n", "content", "overlap"),
    [(1, 10, 2), (10, 10, 2), (11, 10, 2), (25, 10, 4), (100, 16, 6), (1000, 510, 64), (513, 510, 0)],
)
def test_windows_own_every_token_exactly_once(n, content, overlap):
    windows = plan_windows(n, content, overlap, text_index=3)
    owned = [0] * n
    for w in windows:
        assert w.text_index == 3
        assert 0 <= w.start <= w.own_start < w.own_end <= w.end <= n
        assert w.end - w.start <= content
        for i in range(w.own_start, w.own_end):
            owned[i] += 1
    assert owned == [1] * n
    for a, b in itertools.pairwise(windows):
        assert a.end - b.start >= overlap, "consecutive windows overlap by at least `overlap` tokens"


def test_owned_tokens_keep_context_on_both_sides():
    for w in plan_windows(1000, 100, 20)[1:-1]:
        assert w.own_start - w.start >= 10 and w.end - w.own_end >= 10


def test_a_text_just_over_one_window_pays_for_the_rest_only():
    first, last = plan_windows(523, 511, 64)
    assert (first.start, first.end) == (0, 511)
    assert (last.start, last.end) == (511 - 64, 523)  # 76 tokens, not a second full window
    assert last.own_start - last.start >= 32


@pytest.mark.parametrize("family", ["gemma3_text", "bert"])
def test_offsets_point_into_text(tiny_hosts, family):
    tok = HostTokenizer.from_folder(tiny_hosts(family))
    text = "Anna Schmidt — 東京都 😀 anna@example.org"
    enc = tok.encode(text)
    assert len(enc.ids) == len(enc.offsets) > 0
    assert (enc.offsets[:, 0] <= enc.offsets[:, 1]).all() and enc.offsets[:, 1].max() <= len(text)
    assert (enc.offsets[1:, 0] >= enc.offsets[:-1, 0]).all(), "offsets are monotonic"
    covered = set()
    for s, e in enc.offsets:  # byte-level pieces of one character share that character's offsets
        covered.update(range(s, e))
    assert {i for i, ch in enumerate(text) if not ch.isspace()} <= covered


def test_special_tokens_and_padding(tiny_hosts):
    tok = HostTokenizer.from_folder(tiny_hosts("bert"))
    assert len(tok.prefix_ids) == 1 and len(tok.suffix_ids) == 1
    enc = [tok.encode("short"), tok.encode("a somewhat longer text here")]
    windows = [whole_window(i, len(e.ids)) for i, e in enumerate(enc)]
    batch = tok.collate(windows, enc)
    assert batch.input_ids.shape == batch.attention_mask.shape
    n0 = len(enc[0].ids) + 2
    assert batch.attention_mask[0].sum() == n0 and batch.input_ids[0, n0 - 1] == tok.suffix_ids[0]
    assert (batch.input_ids[0, n0:] == tok.pad_id).all()
    assert batch.content_offset == 1
