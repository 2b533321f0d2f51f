"""`probeguard` command line: detect, info, doctor (training and serving commands register here too)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from detector.errors import InputError, ProbeguardError
from detector.paths import default_bundle_path
from detector.redact import REDACT_MODES, Redactor
from detector.settings import DetectorSettings

log = logging.getLogger("probeguard")

# Further subcommands (train, eval, export, serve) add themselves here: name -> (configure parser, run).
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _settings(args: argparse.Namespace) -> DetectorSettings:
    return DetectorSettings.from_env(
        host_path=getattr(args, "host", None),
        num_threads=getattr(args, "threads", None),
        cache_dir=getattr(args, "cache_dir", None),
    )


def _load_detector(args: argparse.Namespace):  # -> Detector (imported lazily: torch is slow to import)
    from detector.pipeline import Detector

    return Detector.load(args.bundle or default_bundle_path(), _settings(args))


def _read_jsonl(stream: BinaryIO) -> Iterator[tuple[int, Any, str | None, str | None]]:
    """Yield (line number, id, text, error) per non-blank line; errors never quote the line's content."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield number, None, None, "line is not valid UTF-8"
            continue
        except json.JSONDecodeError as exc:
            yield number, None, None, f"invalid JSON at column {exc.colno}"
            continue
        if not isinstance(row, dict):
            yield number, None, None, "line must be a JSON object"
            continue
        text = row.get("text")
        if not isinstance(text, str):
            yield number, row.get("id"), None, f"field 'text' must be a string, got {type(text).__name__}"
            continue
        yield number, row.get("id", number), text, None


def _detect_file(args: argparse.Namespace, detector: Any, out: TextIO, redactor: Redactor) -> int:
    failures = 0
    pending: list[tuple[int, Any, str]] = []

    def flush() -> None:
        results = detector.detect([t for _, _, t in pending], batch_size=args.batch_size)
        for (_, row_id, text), result in zip(pending, results, strict=True):
            out.write(json.dumps(_result_row(row_id, text, result, args.redact, redactor), ensure_ascii=False) + "\n")
        pending.clear()

    with Path(args.input).open("rb") as stream:
        for number, row_id, text, error in _read_jsonl(stream):
            if error is None and text is not None:
                try:
                    detector.validate([text])
                except InputError as exc:
                    error = f"{type(exc).__name__}: {str(exc).replace('text 0', 'text')}"
            if error is not None:
                failures += 1
                print(f"line {number}: {error}", file=sys.stderr)
                out.write(json.dumps({"id": row_id, "line": number, "error": error}) + "\n")
                continue
            pending.append((number, row_id, text))
            if len(pending) >= args.batch_size * 8:
                flush()
    if pending:
        flush()
    return failures


def _result_row(row_id: Any, text: str, result: Any, redact: str | None, redactor: Redactor) -> dict[str, Any]:
    row: dict[str, Any] = {"id": row_id, **result.to_dict()}
    if redact:
        row["redacted"] = redactor.redact(text, result.spans, redact)
    return row


def cmd_detect(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        print("error: give either a TEXT argument or --input FILE", file=sys.stderr)
        return 2
    detector = _load_detector(args)
    redactor = Redactor()
    if args.text is not None:
        (result,) = detector.detect([args.text])
        print(json.dumps(_result_row(None, args.text, result, args.redact, redactor), ensure_ascii=False, indent=2))
        return 0
    if args.output in (None, "-"):
        failures = _detect_file(args, detector, sys.stdout, redactor)
    else:
        with Path(args.output).open("w", encoding="utf-8") as out:
            failures = _detect_file(args, detector, out, redactor)
    if failures:
        print(f"{failures} line(s) could not be scored; see the 'error' rows", file=sys.stderr)
    return 1 if failures else 0


def cmd_info(args: argparse.Namespace) -> int:
    from detector.bundle import load_bundle
    from detector.heads import head_level
    from detector.host import default_host_state

    bundle = load_bundle(args.bundle or default_bundle_path())
    m = bundle.manifest
    settings = _settings(args)
    info = {
        "bundle": {"name": m.name, "version": m.version, "path": str(bundle.path), "created_at": m.created_at},
        "host": {**vars(m.host), "cache": default_host_state(settings.cache_dir)},
        "layers": list(m.layers),
        "heads": [
            {"name": e.config.name, "type": e.type, "level": head_level(e.type, e.config), "layer": e.config.layer,
             "active": e.config.active, "labels": list(e.config.labels), "thresholds": e.thresholds}
            for e in m.heads
        ],
        "metrics": m.metrics,
    }  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"bundle  {m.name} {m.version}  ({bundle.path})")
        print(f"host    {m.host.id}  sha256 {m.host.sha256[:16]}…  layers read {list(m.layers)} of {m.host.num_layers}")
        for h in info["heads"]:
            state = "" if h["active"] else "  (inactive)"
            print(f"head    {h['name']:<16} {h['type']:<16} layer {h['layer']:<3} {', '.join(h['labels'])}{state}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from detector.doctor import run_doctor

    return run_doctor(_settings(args), args.bundle, as_json=args.json)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probeguard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bundle", type=Path, help="bundle folder (default: newest models/probeguard-base)")
        p.add_argument("--host", type=Path, help="host model folder (default: the bundle's host)")
        p.add_argument(
            "--cache-dir", type=Path, help="cache folder (default: $PROBEGUARD_CACHE or ~/.cache/probeguard)"
        )
        p.add_argument("--threads", type=_positive_int, help="torch threads (default: $PROBEGUARD_NUM_THREADS or 1)")

    p = sub.add_parser("detect", help="score a text, or a JSONL file of {id, text} rows")
    common(p)
    p.add_argument("text", nargs="?", help="the text to score")
    p.add_argument("--input", type=Path, help="JSONL input, one {'id', 'text'} object per line")
    p.add_argument("--output", help="JSONL output (default: stdout)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="windows per forward pass")
    p.add_argument("--redact", choices=REDACT_MODES, help="also return the text with spans redacted")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("info", help="describe a bundle: host, layers, heads, labels, thresholds")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("doctor", help="check host, cache, runtime and truncated-vs-full parity; non-zero on failure")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    for name, (configure, run) in EXTRA_COMMANDS.items():
        p = sub.add_parser(name)
        configure(p)
        p.set_defaults(func=run)
    return parser


def _register_extras() -> None:
    try:
        from service import cli as service_cli
    except ImportError:  # the service extras (litestar, uvicorn) are not installed
        pass
    else:
        EXTRA_COMMANDS.setdefault("serve", (service_cli.configure, service_cli.run))
    try:
        from training import eval_cli, train
    except ImportError:  # the training extras (faker, tqdm) are not installed
        return
    EXTRA_COMMANDS.setdefault("train", (train.configure, train.run))
    EXTRA_COMMANDS.setdefault("eval", (eval_cli.configure, eval_cli.run))


def main(argv: list[str] | None = None) -> int:
    _register_extras()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        return int(args.func(args))
    except ProbeguardError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
