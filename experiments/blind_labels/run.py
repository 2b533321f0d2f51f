"""Do the unsafe dev parts' labels hold up? An independent, blind relabelling against the sources' roles.

`experiments/blind_labels/dev_blind_labels.jsonl` holds one label per dev text of every unsafe positive and look-alike
source (keyed by the first 16 hex digits of the text's SHA-256, so no text is stored twice), given by two LLM helpers
who saw the texts shuffled, without source, role or any model score, under the rules of LABELLING.md (provenance
there). If many look-alikes were really harmful, no detector could meet a 5 % look-alike bound and the bound would
measure label noise; this prints, per source, the share the blind labellers called unsafe / borderline / safe.

    python -m experiments.blind_labels.run [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from probeguard.training.category_sources import CategorySource

LABELS_FILE = Path(__file__).resolve().parent / "dev_blind_labels.jsonl"
LABELS = ("unsafe", "borderline", "safe")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_blind_labels(path: Path = LABELS_FILE) -> dict[str, str]:
    """text key -> blind label."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        if row.get("label") not in LABELS:
            raise ValueError(f"{path.name}:{n}: label must be one of {LABELS}, got {row.get('label')!r}")
        out[row["sha256_16"]] = row["label"]
    return out


def agreement(sources: Sequence[CategorySource], blind: dict[str, str]) -> list[dict]:
    """One row per positive or look-alike source: its dev texts' blind labels as shares; `unlabelled` counts dev texts
    the file has no label for (a source changed since the labelling)."""
    rows = []
    for s in sources:
        if s.role not in ("positive", "lookalike"):
            continue
        found = [blind.get(text_key(r.text)) for r in s.dev]
        counts = Counter(x for x in found if x is not None)
        n = sum(counts.values())
        shares = {label: round(counts[label] / n, 3) if n else None for label in LABELS}
        rows.append({"source": s.name, "role": s.role, "n": n, "unlabelled": found.count(None), **shares})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from probeguard.training.category_sources import category_sources

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="category_sources' seed (the dev parts the file labels)")
    args = p.parse_args(argv)
    sources = [s for s in category_sources(args.seed) if s.category == "unsafe"]
    print(
        "| source | role | dev texts | blind: unsafe | borderline | safe | unlabelled |\n|---|---|---|---|---|---|---|"
    )
    for r in agreement(sources, load_blind_labels()):
        print(f"| {r['source']} | {r['role']} | {r['n']} | {r['unsafe']} | {r['borderline']} | {r['safe']} "
              f"| {r['unlabelled']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
