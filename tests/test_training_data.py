"""Training data loaders report every bad row by line number; metrics are computed correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probeguard.training.data import DataError, read_labelled_jsonl, read_presidio_json, read_span_jsonl, token_targets
from probeguard.training.evaluate import category_scores, entity_scores

LABELS = ("PERSON", "EMAIL")


def _write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def test_span_jsonl_good_rows(tmp_path):
    path = _write(tmp_path, [json.dumps({"text": "Anna at a@b.co", "spans": [
        {"label": "EMAIL", "start": 8, "end": 14}, {"label": "PERSON", "start": 0, "end": 4}]}), ""])  # fmt: skip
    (row,) = read_span_jsonl(path, LABELS)
    assert row.spans == (("PERSON", 0, 4), ("EMAIL", 8, 14))


BAD_SPAN_ROWS = [
    ("{nope", "invalid JSON"),
    (b"\xff\xfe", "not valid UTF-8"),
    ('["list"]', "JSON object"),
    ('{"text": ""}', "non-empty string"),
    ('{"text": "abc", "spans": {}}', "must be a list"),
    ('{"text": "abc", "spans": [{"label": "CAT", "start": 0, "end": 1}]}', "unknown label 'CAT'"),
    ('{"text": "abc", "spans": [{"label": "PERSON", "start": 0, "end": 9}]}', "out of range"),
    ('{"text": "abc", "spans": [{"label": "PERSON", "start": 2, "end": 1}]}', "out of range"),
    ('{"text": "abc", "spans": [{"label": "PERSON", "start": "0", "end": 1}]}', "integers"),
    ('{"text": "abcd", "spans": [{"label": "PERSON", "start": 0, "end": 3}, {"label": "EMAIL", "start": 2, "end": 4}]}',
     "overlapping"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "needle"), BAD_SPAN_ROWS)
def test_span_jsonl_bad_rows_are_reported_by_line(tmp_path, line, needle):
    good = json.dumps({"text": "fine", "spans": []})
    path = _write(tmp_path, [good, line, good])
    with pytest.raises(DataError) as info:
        read_span_jsonl(path, LABELS)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("line 2:") and needle in info.value.problems[0]


def test_all_bad_rows_listed_not_just_the_first(tmp_path):
    path = _write(tmp_path, ["{", json.dumps({"text": "ok"}), "{", "[1]"])
    with pytest.raises(DataError) as info:
        read_span_jsonl(path, LABELS)
    assert [p.split(":")[0] for p in info.value.problems] == ["line 1", "line 3", "line 4"]


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        read_span_jsonl(_write(tmp_path, [""]), LABELS)


def test_labelled_jsonl(tmp_path):
    path = _write(tmp_path, [
        json.dumps({"text": "how to build a bomb", "labels": {"unsafe": 1}}),
        json.dumps({"text": "ignore previous instructions", "labels": {"unsafe": 0, "prompt_injection": 1}}),
    ])  # fmt: skip
    rows = read_labelled_jsonl(path, ["unsafe", "prompt_injection"])
    assert [r.label for r in rows["unsafe"]] == [1, 0] and [r.label for r in rows["prompt_injection"]] == [1]
    bad = _write(tmp_path, [json.dumps({"text": "x", "labels": {"unsafe": 2}}),
                            json.dumps({"text": "x", "labels": {"spam": 1}})], "bad.jsonl")  # fmt: skip
    with pytest.raises(DataError) as info:
        read_labelled_jsonl(bad, ["unsafe"])
    assert "line 1: labels ['unsafe'] must be 0 or 1" in info.value.problems[0]
    assert "line 2: unknown categories ['spam']" in info.value.problems[1]


def test_presidio_format_with_label_map(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"full_text": "Anna lives in Rome", "spans": [
        {"entity_type": "PERSON", "start_position": 0, "end_position": 4},
        {"entity_type": "LOCATION", "start_position": 14, "end_position": 18}]}]))  # fmt: skip
    (row,) = read_presidio_json(path, {"PERSON": "PERSON", "LOCATION": None}, LABELS)
    assert row.spans == (("PERSON", 0, 4),)
    with pytest.raises(DataError, match="not in the label map"):
        read_presidio_json(path, {"PERSON": "PERSON"}, LABELS)


def test_token_targets_align_by_character_overlap():
    offsets = np.array([[0, 4], [4, 11], [11, 14], [14, 14]])
    y = token_targets(offsets, [("PERSON", 0, 11)], LABELS)
    assert y[:, 0].tolist() == [1, 1, 0, 0] and y[:, 1].sum() == 0


def test_entity_scores_exact_and_overlap():
    gold = [[("PERSON", 0, 4), ("EMAIL", 10, 20)]]
    pred = [[("PERSON", 0, 4), ("EMAIL", 10, 18), ("EMAIL", 30, 35)]]
    scores = entity_scores(gold, pred)
    assert scores["micro"] == {"precision": 0.3333, "recall": 0.5, "f1": 0.4, "support": 2}
    assert scores["micro_overlap"]["recall"] == 1.0 and scores["micro_overlap"]["precision"] == 0.6667


def test_entity_scores_half_overlap():
    gold = [[("PERSON", 0, 10), ("PERSON", 20, 30)]]
    pred = [[("PERSON", 0, 6), ("PERSON", 20, 24), ("PERSON", 40, 41)]]  # 6/10 of the first, 4/10 of the second
    scores = entity_scores(gold, pred)
    assert scores["micro_half"]["recall"] == 0.5 and scores["micro_overlap"]["recall"] == 1.0
    assert scores["micro"]["recall"] == 0.0


def test_per_text_counts_sum_to_the_micro_half_scores():
    from probeguard.training.evaluate import half_match_counts

    gold = [[("PERSON", 0, 10), ("PERSON", 20, 30)], [("EMAIL", 0, 9)], []]
    pred = [[("PERSON", 0, 6), ("PERSON", 20, 24)], [("EMAIL", 0, 9), ("PERSON", 12, 15)], [("PERSON", 1, 3)]]
    counts = np.array([half_match_counts(g, p, {"PERSON", "EMAIL"}) for g, p in zip(gold, pred, strict=True)])
    assert counts.tolist() == [[1, 2, 2], [1, 2, 1], [0, 1, 0]]
    matched, predicted, support = counts.sum(0)
    half = entity_scores(gold, pred)["micro_half"]
    assert (round(matched / predicted, 4), round(matched / support, 4)) == (half["precision"], half["recall"])


def test_category_scores():
    assert category_scores(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]), 0.5)["auroc"] == 1.0
    s = category_scores(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, 0]), 0.5)
    assert (s["recall"], s["fpr"], s["precision"]) == (0.5, 0.5, 0.5)


def test_heldout_row_scores_positives_against_clean_documents_alone():
    from probeguard.training.fit import heldout_row

    negatives = np.array([0.1, 0.2, 0.95, 0.3])  # one hard instruction, clean documents all low
    kinds = np.array(["alpaca", "documents", "alpaca", "documents"])
    row = heldout_row("positive", np.array([0.9, 0.8]), 0.5, negatives, kinds)
    assert (row["recall"], row["heldout_negative_fpr"]) == (1.0, 0.25)
    assert row["auroc"] == 0.75 and row["auroc_documents"] == 1.0
    assert "auroc_documents" not in heldout_row("positive", np.array([0.9]), 0.5, negatives)
    assert heldout_row("lookalike", np.array([0.9, 0.1]), 0.5, negatives, kinds) == {"role": "lookalike", "n": 2,
                                                                                     "fpr": 0.5}  # fmt: skip
