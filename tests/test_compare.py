"""training.compare: two bundles' dev suites side by side, per source, Presidio beside, appended to the report once."""

from __future__ import annotations

import json

from probeguard.training.compare import MARK, main


def _metrics(version: str, f1: float, recall: float, fpr: float, threshold: float) -> dict:
    pii = {"wikigold": {"probeguard": {"f1": f1, "structured_per_1000": 0.0}, "presidio": {"f1": 0.66}}}
    sources = {"advbench": {"role": "positive", "texts": 75, "recall": recall},
               "hh_safe": {"role": "lookalike", "texts": 126, "fpr": fpr}}  # fmt: skip
    return {
        "bundle": f"probeguard-base {version}",
        "dev": {"pii": {"sources": pii}, "categories": {"unsafe": {"threshold": threshold, "sources": sources}}},
    }


def test_compare_writes_one_section_with_every_source(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    pairs = ((old, _metrics("0.1.0", 0.8, 0.9, 0.2, 0.3)), (new, _metrics("0.2.0", 0.85, 0.8, 0.1, 0.4)))
    for folder, metrics in pairs:
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(metrics))
    (new / "report.md").write_text("# report\n")
    for _ in range(2):  # a second run replaces the section
        assert main(["--old", str(old), "--new", str(new), "--write"]) == 0
    text = capsys.readouterr().out
    assert "| wikigold | 0.800 | 0.850 | 0.660 | 0.0 → 0.0 |" in text
    assert "| advbench | positive | 75 | recall 0.900 | 0.800 | -0.100 |" in text
    assert "| hh_safe | lookalike | 126 | fpr 0.200 | 0.100 | -0.100 |" in text
    assert "threshold 0.3 → 0.4" in text and "better on 1 sources, worse on 1" in text
    report = (new / "report.md").read_text()
    assert report.startswith("# report") and report.count(MARK) == 1
