"""The golden corpus: fixed texts and the default bundle's answers to them (spans and category scores at the API's
rounding), so a refactor that must not change behaviour is checked against what was served before it.

Texts are project-written or synthetic (inline in `golden_corpus.jsonl`) or real rows of `../shared/data` named by file
and row (the shared data's texts are not copied into the repository). Regenerate the answers only when a change is
meant to alter them, and say so in the commit:

    python -m tests.golden --write      # scores the corpus with the default bundle as served (ONNX)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "golden_corpus.jsonl"
ANSWERS = Path(__file__).resolve().parent / "data" / "golden_answers.json"
SHARED = ROOT.parent / "shared" / "data"
SCORE_TOLERANCE = 2e-4  # two units of the API's 4-decimal rounding: another CPU's SIMD path may move the last digit


def _shared_text(ref: str) -> str:
    """`file#row` under ../shared/data: a JSONL row's `text` or a JSON list row's `instruction`."""
    name, _, row = ref.partition("#")
    path = SHARED / name
    if path.suffix == ".jsonl":
        line = path.read_text(encoding="utf-8").splitlines()[int(row)]
        return json.loads(line)["text"]
    return json.loads(path.read_text(encoding="utf-8"))[int(row)]["instruction"]


def corpus() -> list[tuple[str, str]]:
    """(id, text) of every corpus row, in file order."""
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append((row["id"], row["text"] if "text" in row else _shared_text(row["shared"])))
    return out


def answers(detector: Any, texts: list[str]) -> list[dict[str, Any]]:
    """What the detector answers for each text, at the API's rounding (`Detection.to_dict`)."""
    return [d.to_dict() for d in detector.detect(texts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write tests/data/golden_answers.json")
    args = parser.parse_args()
    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.paths import default_bundle_path

    detector = Detector.load(default_bundle_path(), DetectorSettings.from_env(backend="onnx"))
    rows = corpus()
    got = answers(detector, [t for _, t in rows])
    result = {"bundle": f"{detector.bundle.manifest.name}/{detector.bundle.manifest.version}",
              "answers": {i: a for (i, _), a in zip(rows, got, strict=True)}}  # fmt: skip
    text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
    if args.write:
        ANSWERS.write_text(text, encoding="utf-8")
    print(f"{len(rows)} texts; {sum(len(a['spans']) for a in got)} spans")


if __name__ == "__main__":
    main()
