"""Training and evaluation data: formats, loaders and alignment.

Formats (one JSON object per line):
- span data: `{"text": str, "spans": [{"label": str, "start": int, "end": int}, ...]}`
- labelled text: `{"text": str, "labels": {"unsafe": 0|1, "prompt_injection": 0|1, ...}}`
- Presidio-research JSON (evaluation only): `[{"full_text", "spans": [{"entity_type", "start_position",
  "end_position"}]}]`, with a label map to the canonical labels.

Every loader validates every row and raises `DataError` listing each bad row by line number (offsets out of range,
overlapping spans, unknown labels, wrong types, invalid JSON or UTF-8). Nothing is dropped silently.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probeguard.detector.errors import ProbeguardError

SHARED_UNSAFE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "unsafe"
MAX_PROBLEMS_SHOWN = 20


class DataError(ProbeguardError):
    def __init__(self, source: str, problems: list[str]) -> None:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  … and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        super().__init__(f"{source}: {len(problems)} bad row(s)\n  {shown}{more}")
        self.problems = problems


@dataclass(frozen=True)
class SpanExample:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (label, start, end), sorted, non-overlapping
    group: str = ""  # template id, locale or source file: for shifted validation splits


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int  # 1 = in the category (e.g. unsafe), 0 = not
    group: str = ""
    pair: str = ""  # a minimal pair's key ("pair/<id>", ids unique across pair sets): a harmful request and its twin


def _lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed object or None, problem or None) for every non-blank line."""
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(str(path), [f"cannot read ({type(exc).__name__})"]) from None
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw.decode("utf-8")), None
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8"
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON at column {exc.colno}"


def check_spans(text: str, spans: Any, labels: Sequence[str]) -> tuple[list[tuple[str, int, int]], str | None]:
    """Validate a list of span objects against `text`; returns (sorted spans, first problem or None)."""
    if not isinstance(spans, list):
        return [], "field 'spans' must be a list"
    out: list[tuple[str, int, int]] = []
    for j, span in enumerate(spans):
        if not isinstance(span, dict):
            return [], f"spans[{j}] must be an object"
        label, start, end = span.get("label"), span.get("start"), span.get("end")
        if label not in labels:
            return [], f"spans[{j}] has unknown label {label!r} (known: {', '.join(labels)})"
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            return [], f"spans[{j}] start/end must be integers"
        if not 0 <= start < end <= len(text):
            return [], f"spans[{j}] offsets [{start}, {end}) out of range for a text of {len(text)} characters"
        out.append((label, start, end))
    out.sort(key=lambda s: (s[1], s[2]))
    for a, b in itertools.pairwise(out):
        if b[1] < a[2]:
            return [], f"overlapping spans [{a[1]}, {a[2]}) and [{b[1]}, {b[2]})"
    return out, None


def read_span_jsonl(path: Path, labels: Sequence[str]) -> list[SpanExample]:
    rows, problems = [], []
    for number, obj, problem in _lines(path):
        if problem is None and not isinstance(obj, dict):
            problem = "line must be a JSON object"
        if problem is None and not (isinstance(obj.get("text"), str) and obj["text"].strip()):
            problem = "field 'text' must be a non-empty string"
        if problem is None:
            spans, problem = check_spans(obj["text"], obj.get("spans", []), labels)
        if problem is not None:
            problems.append(f"line {number}: {problem}")
            continue
        rows.append(SpanExample(obj["text"], tuple(spans), path.name))
    if problems:
        raise DataError(str(path), problems)
    if not rows:
        raise DataError(str(path), ["file has no rows"])
    return rows


def read_labelled_jsonl(path: Path, categories: Sequence[str]) -> dict[str, list[LabelledText]]:
    """category -> rows that carry a 0/1 label for it (a row may label several categories)."""
    out: dict[str, list[LabelledText]] = {c: [] for c in categories}
    problems = []
    for number, obj, problem in _lines(path):
        if problem is None and not isinstance(obj, dict):
            problem = "line must be a JSON object"
        if problem is None and not (isinstance(obj.get("text"), str) and obj["text"].strip()):
            problem = "field 'text' must be a non-empty string"
        labels = obj.get("labels") if problem is None else None
        if problem is None and (not isinstance(labels, dict) or not labels):
            problem = "field 'labels' must be a non-empty object"
        if problem is None:
            unknown = sorted(set(labels) - set(categories))
            bad = [k for k, v in labels.items() if v not in (0, 1) or isinstance(v, float)]
            if unknown:
                problem = f"unknown categories {unknown} (known: {', '.join(categories)})"
            elif bad:
                problem = f"labels {bad} must be 0 or 1"
        if problem is not None:
            problems.append(f"line {number}: {problem}")
            continue
        for category, value in labels.items():
            out[category].append(LabelledText(obj["text"], int(value), path.name))
    if problems:
        raise DataError(str(path), problems)
    if not any(out.values()):
        raise DataError(str(path), ["file has no rows"])
    return out


def read_presidio_json(path: Path, label_map: Mapping[str, str | None], labels: Sequence[str]) -> list[SpanExample]:
    """Presidio-research format; entity types mapped through `label_map` (None = ignore that type)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(str(path), [f"cannot parse ({type(exc).__name__})"]) from None
    if not isinstance(data, list):
        raise DataError(str(path), ["top level must be a list"])
    rows, problems = [], []
    for i, item in enumerate(data):
        text = item.get("full_text") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            problems.append(f"item {i}: field 'full_text' must be a non-empty string")
            continue
        converted = []
        for span in item.get("spans") or []:
            etype = span.get("entity_type") if isinstance(span, dict) else None
            if etype not in label_map:
                problems.append(f"item {i}: entity type {etype!r} is not in the label map")
                break
            if label_map[etype] is not None:
                converted.append({"label": label_map[etype], "start": span.get("start_position"),
                                  "end": span.get("end_position")})  # fmt: skip
        else:
            spans, problem = check_spans(text, converted, labels)
            if problem is not None:
                problems.append(f"item {i}: {problem}")
                continue
            rows.append(SpanExample(text, tuple(spans), path.name))
    if problems:
        raise DataError(str(path), problems)
    return rows


def load_instructions(path: Path, label: int) -> list[LabelledText]:
    """`[{"instruction": str, ...}]` files of shared/data/unsafe (harmful -> 1, harmless -> 0)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(str(path), [f"cannot read ({type(exc).__name__})"]) from None
    out, problems = [], []
    for i, row in enumerate(rows):
        text = row.get("instruction") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            problems.append(f"row {i}: no instruction string")
            continue
        out.append(LabelledText(text, label, path.stem))
    if problems:
        raise DataError(str(path), problems)
    return out


def token_targets(offsets: np.ndarray, spans: Sequence[tuple[str, int, int]], labels: Sequence[str]) -> np.ndarray:
    """[n_tokens, n_labels] 0/1: a token is in a span when its characters overlap the span."""
    index = {label: i for i, label in enumerate(labels)}
    targets = np.zeros((len(offsets), len(labels)), dtype=np.float32)
    if len(offsets) == 0:
        return targets
    starts, ends = offsets[:, 0], offsets[:, 1]
    for label, start, end in spans:
        hit = (starts < end) & (ends > start) & (ends > starts)
        targets[hit, index[label]] = 1.0
    return targets
