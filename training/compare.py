"""Two bundles' dev suites side by side, per source, with Presidio beside (from the newer run): what a new default
changes. Both suites come from `probeguard train` (the same dev parts for the same config and seed, scored through
the saved bundle), read from each bundle's metrics.json; nothing is rescored.

    python -m probeguard.training.compare --old models/probeguard-base/0.12.0 --new models/probeguard-base/0.13.0 \
        [--write]   # append the table to the new bundle's report.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MARK = "## Against the previous default"


def _f1(row: dict[str, Any], who: str) -> str:
    value = (row.get(who) or {}).get("f1")
    return "" if value is None else f"{value:.3f}"


def compare(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> list[str]:
    """Markdown lines: PII entity F1 per source (and structured spans per 1,000 PII-free texts), category recall per
    positive source and FPR per look-alike and negative source, thresholds; the sources both suites hold."""
    lines = [f"{MARK} ({old_name} → {new_name}, same dev parts)", "",
             f"| PII source | F1 {old_name} | F1 {new_name} | Presidio F1 | structured / 1,000 (old → new) |",
             "|---|---|---|---|---|"]  # fmt: skip
    o_pii, n_pii = old["dev"]["pii"]["sources"], new["dev"]["pii"]["sources"]
    for name in [k for k in n_pii if k in o_pii]:
        o, n = o_pii[name], n_pii[name]
        so, sn = o["probeguard"]["structured_per_1000"], n["probeguard"]["structured_per_1000"]
        lines.append(f"| {name} | {_f1(o, 'probeguard')} | {_f1(n, 'probeguard')} | {_f1(n, 'presidio')} | "
                     f"{so} → {sn} |")  # fmt: skip
    for category, n_cat in new["dev"]["categories"].items():
        o_cat = old["dev"]["categories"].get(category)
        if o_cat is None:
            continue
        lines += ["", f"**{category}** (threshold {o_cat['threshold']} → {n_cat['threshold']}): recall on positive "
                      "sources, false-positive rate on look-alike and negative ones", "",
                  "| source | role | texts | old | new | change |", "|---|---|---|---|---|---|"]  # fmt: skip
        changes = []
        for name, n in n_cat["sources"].items():
            o = o_cat["sources"].get(name)
            if o is None:
                continue
            key = "recall" if n["role"] == "positive" else "fpr"
            delta = n[key] - o[key]
            changes.append(delta if key == "recall" else -delta)
            lines.append(f"| {name} | {n['role']} | {n['texts']} | {key} {o[key]:.3f} | {n[key]:.3f} | {delta:+.3f} |")
        positive = [n["recall"] for n in n_cat["sources"].values() if n["role"] == "positive"]
        positive_old = [o["recall"] for o in o_cat["sources"].values() if o["role"] == "positive"]
        better = sum(c > 0 for c in changes)
        worse = sum(c < 0 for c in changes)
        lines += ["", f"Worst positive recall {min(positive_old):.3f} → {min(positive):.3f}; mean "
                      f"{sum(positive_old) / len(positive_old):.3f} → {sum(positive) / len(positive):.3f}; "
                      f"better on {better} sources, worse on {worse} (small sources move by one text)."]  # fmt: skip
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", type=Path, required=True)
    p.add_argument("--new", type=Path, required=True)
    p.add_argument("--write", action="store_true", help="append (or replace) the section in the new report.md")
    args = p.parse_args(argv)
    old, new = (json.loads((b / "metrics.json").read_text()) for b in (args.old, args.new))
    lines = compare(old, new, old["bundle"].split()[-1], new["bundle"].split()[-1])
    text = "\n".join(lines)
    print(text)
    if args.write:
        report = args.new / "report.md"
        body = report.read_text().split(MARK)[0].rstrip("\n")
        report.write_text(body + "\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
