"""The dev suite's category block: per-source rows at the served threshold and the operating-point table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from probeguard.training.category_sources import CategorySource
from probeguard.training.data import LabelledText
from probeguard.training.devsuite import THRESHOLD_GRID, operating_points, render_categories, run_categories

# text -> calibrated score the fake detector returns
SCORES = {"harm a": 0.95, "harm b": 0.65, "harm c": 0.35, "twin a": 0.7, "twin b": 0.2, "plain a": 0.05,
          "plain b": 0.45, "plain c": 0.01, "plain d": 0.02}  # fmt: skip


class FakeDetector:
    def __init__(self, threshold: float) -> None:
        self.plan = SimpleNamespace(categories={"unsafe": ("head", 0, threshold)})

    def detect(self, texts, token_budget=None):
        return [SimpleNamespace(categories={"unsafe": SimpleNamespace(score=SCORES[t])}) for t in texts]


def _source(name: str, role: str, texts: list[str], family: str = "") -> CategorySource:
    label = int(role == "positive")
    return CategorySource(name, "unsafe", role, [], [LabelledText(t, label) for t in texts], family)


SOURCES = [
    _source("harm_pairs", "positive", ["harm a", "harm b"], "pairs"),
    _source("harm_plain", "positive", ["harm c"]),
    _source("benign_pairs", "lookalike", ["twin a", "twin b"], "pairs"),
    _source("alpaca", "negative", ["plain a", "plain b", "plain c", "plain d"]),
]


def test_operating_points_by_hand():
    scored = [("positive", np.array([0.95, 0.65])), ("positive", np.array([0.35])),
              ("lookalike", np.array([0.7, 0.2])), ("negative", np.array([0.05, 0.45, 0.01, 0.02]))]  # fmt: skip
    low, high = operating_points(scored, [0.3, 0.8])
    assert low == {"threshold": 0.3, "worst_recall": 1.0, "mean_recall": 1.0, "mean_lookalike_fpr": 0.5,
                   "max_lookalike_fpr": 0.5, "negative_fpr": 0.25}  # fmt: skip
    assert high == {"threshold": 0.8, "worst_recall": 0.0, "mean_recall": 0.25, "mean_lookalike_fpr": 0.0,
                    "max_lookalike_fpr": 0.0, "negative_fpr": 0.0}  # fmt: skip
    (only,) = operating_points([("negative", np.array([0.9]))], [0.5])
    assert only == {"threshold": 0.5, "negative_fpr": 1.0}  # no positives or look-alikes: no recall columns


@pytest.mark.parametrize("served", [0.5, 0.55])
def test_run_categories_rows_and_grid(served):
    block = run_categories(FakeDetector(served), SOURCES)["unsafe"]
    rows = block["sources"]
    assert rows["harm_pairs"]["recall"] == 1.0 and rows["harm_plain"]["recall"] == 0.0
    assert rows["benign_pairs"]["fpr"] == 0.5 and rows["alpaca"]["fpr"] == 0.0
    assert rows["harm_pairs"]["auroc_twins"] == 0.75  # 0.95 beats both twins, 0.65 beats one
    thresholds = [p["threshold"] for p in block["operating_points"]]
    assert thresholds == sorted({*THRESHOLD_GRID, served})  # the served threshold is always a row
    served_row = block["operating_points"][thresholds.index(served)]
    assert served_row["worst_recall"] == 0.0 and served_row["mean_recall"] == 0.5
    table = "\n".join(render_categories({"unsafe": block}))
    assert f"shipped threshold {served}" in table and f"| {served} | 0.0 | 0.5 | 0.5 / 0.5 | 0.0 |" in table
