"""Behaviour is pinned: the default bundle, served as ONNX, answers the golden corpus exactly as recorded in
`tests/data/golden_answers.json` (spans exactly; category scores and span scores at the API's 4-decimal rounding)."""

from __future__ import annotations

import json

import pytest

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.paths import default_bundle_path
from tests.golden import ANSWERS, SCORE_TOLERANCE, SHARED, answers, corpus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(ANSWERS.read_text(encoding="utf-8"))


def test_default_bundle_answers_the_golden_corpus_as_recorded(recorded):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside the checkout")
    detector = Detector.load(default_bundle_path(), DetectorSettings.from_env(num_threads=1, backend="onnx"))
    manifest = detector.bundle.manifest
    assert f"{manifest.name}/{manifest.version}" == recorded["bundle"], "the default bundle changed: regenerate"
    rows = corpus()
    assert [i for i, _ in rows] == list(recorded["answers"]), "corpus and recorded answers list different texts"
    mismatched = []
    for (row_id, _), got in zip(rows, answers(detector, [t for _, t in rows]), strict=True):
        want = recorded["answers"][row_id]
        spans_same = [(s["label"], s["start"], s["end"]) for s in got["spans"]] == [
            (s["label"], s["start"], s["end"]) for s in want["spans"]
        ]
        span_scores = spans_same and all(
            abs(a["score"] - b["score"]) <= SCORE_TOLERANCE for a, b in zip(got["spans"], want["spans"], strict=True)
        )
        flags_same = {k: v["flagged"] for k, v in got["categories"].items()} == {
            k: v["flagged"] for k, v in want["categories"].items()
        }
        scores = all(
            abs(v["score"] - want["categories"][k]["score"]) <= SCORE_TOLERANCE for k, v in got["categories"].items()
        )
        if not (spans_same and span_scores and flags_same and scores):
            mismatched.append(row_id)
    assert not mismatched, f"answers changed for {mismatched}"
