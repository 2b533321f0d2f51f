"""`probeguard eval --bundle B --data FILE`: score span, labelled or Presidio-format data with a bundle."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from probeguard.detector.commands import add_host_model_arg, host_model_arg
from probeguard.detector.errors import ConfigError
from probeguard.detector.paths import BUNDLE_HELP, default_bundle_path
from probeguard.detector.settings import DetectorSettings
from probeguard.training.category_sources import SHARED
from probeguard.training.data import DataError, read_labelled_jsonl, read_presidio_json, read_span_jsonl
from probeguard.training.devsuite import run_pii
from probeguard.training.evaluate import category_scores, entity_scores, span_triples

FORMATS = ("auto", "span", "labelled", "presidio")


def detect_format(path: Path) -> str:
    if path.suffix == ".json":
        return "presidio"
    for raw in path.read_bytes().splitlines():
        if raw.strip():
            try:
                first = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                break
            if isinstance(first, dict) and "labels" in first:
                return "labelled"
            return "span"
    raise DataError(str(path), ["cannot tell the format from the first line; pass --format"])


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument("--data", type=Path, help="span JSONL, labelled JSONL or Presidio-research JSON")
    p.add_argument("--suite", choices=["dev"], help="the dev suite: every source's dev part, Presidio beside")
    p.add_argument("--no-peer", action="store_true", help="dev suite without Presidio (faster)")
    p.add_argument("--out", type=Path, default=Path("devsuite"), help="dev suite: folder for devsuite.md/.json")
    p.add_argument(
        "--shared-dir",
        type=Path,
        default=SHARED,
        help=f"dev suite: the shared data folder with the public sets' dev parts (default: {SHARED})",
    )
    p.add_argument(
        "--max-per-source",
        type=int,
        default=0,
        help="dev suite: score at most N dev texts per source (0 = all; a smoke run, noisier figures)",
    )
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--label-map", help="Presidio entity type -> label, as JSON or a JSON file; null ignores a type")
    add_host_model_arg(p)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--batch-tokens", type=int, help="padded tokens per forward pass (default: $PROBEGUARD_BATCH_TOKENS)"
    )


def run(args: argparse.Namespace) -> int:
    from probeguard.detector.pipeline import Detector

    if (args.data is None) == (args.suite is None):
        raise ConfigError("give exactly one of --data FILE and --suite dev")
    settings = DetectorSettings.from_env(host_path=host_model_arg(args), num_threads=args.threads)
    detector = Detector.load(default_bundle_path(args.bundle, settings), settings)
    if args.suite:
        return _run_suite(detector, args)
    labels = detector.plan.token_labels
    fmt = detect_format(args.data) if args.format == "auto" else args.format
    report: dict[str, object] = {"bundle": detector.info()["bundle"], "data": str(args.data), "format": fmt}
    if fmt == "labelled":
        per_category = read_labelled_jsonl(args.data, list(detector.plan.categories))
        for category, rows in per_category.items():
            if not rows:
                continue
            results = detector.detect([r.text for r in rows], token_budget=args.batch_tokens)
            scores = np.array([r.categories[category].score for r in results])
            y = np.array([r.label for r in rows])
            threshold = detector.plan.categories[category][2]
            report[category] = category_scores(scores, y, threshold)
    else:
        if fmt == "presidio":
            raw = args.label_map or "{}"
            label_map = json.loads(Path(raw).read_text() if Path(raw).is_file() else raw)
            examples = read_presidio_json(args.data, label_map, labels)
        else:
            examples = read_span_jsonl(args.data, labels)
        results = detector.detect([e.text for e in examples], token_budget=args.batch_tokens)
        gold = [list(e.spans) for e in examples]
        pred = span_triples(results)
        report["entities"] = entity_scores(gold, pred)
        report["texts"] = len(examples)
    print(json.dumps(report, indent=2))
    return 0


def _run_suite(detector, args: argparse.Namespace) -> int:
    import platform
    import sys

    from probeguard.training.category_sources import category_sources
    from probeguard.training.devsuite import render_markdown, run_categories, write_report
    from probeguard.training.pii_harvest import build_pii_sources

    def capped(sources: list) -> list:
        n = args.max_per_source
        return [dataclasses.replace(s, dev=s.dev[:n]) for s in sources] if n > 0 else sources

    info = detector.info()
    report = {
        "bundle": f"{info['bundle']['name']} {info['bundle']['version']}",
        "machine": f"{platform.machine()} {platform.system()}, {detector.settings.num_threads} thread(s), "
        f"backend {detector.backend.name}",
        "command": "probeguard " + " ".join(sys.argv[1:]),
        "pii": run_pii(
            detector,
            capped(build_pii_sources(0, args.shared_dir / "pii_real")),
            with_peer=not args.no_peer,
            token_budget=args.batch_tokens,
        ),
        "categories": run_categories(
            detector, capped(category_sources(0, shared=args.shared_dir)), token_budget=args.batch_tokens
        ),
    }
    write_report(report, args.out)
    print(render_markdown(report))
    return 0
