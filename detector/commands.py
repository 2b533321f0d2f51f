"""The library's own subcommands: detect, info, doctor, prepare (wired into `probeguard` by `probeguard.cli`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from probeguard.detector.errors import ConfigError, InputError
from probeguard.detector.paths import BUNDLE_HELP, default_bundle_path
from probeguard.detector.redact import REDACT_MODES, Redactor
from probeguard.detector.settings import DetectorSettings

log = logging.getLogger("probeguard")
FLUSH_TEXTS = 128  # JSONL rows scored (and written) together; bounds memory, not the forward pass size


def host_model_arg(args: argparse.Namespace) -> Path | None:
    """`--host-model`, or the deprecated `--host` spelling (which `serve` uses for its bind address)."""
    old = getattr(args, "host_deprecated", None)
    if old is not None:
        print("warning: --host for the host model is deprecated; use --host-model", file=sys.stderr)
    return getattr(args, "host_model", None) or old


def add_host_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-model", type=Path, help="host model folder (default: the bundle's host)")
    p.add_argument("--host", dest="host_deprecated", type=Path, help=argparse.SUPPRESS)


def _settings(args: argparse.Namespace) -> DetectorSettings:
    return DetectorSettings.from_env(
        host_path=host_model_arg(args),
        num_threads=getattr(args, "threads", None),
        cache_dir=getattr(args, "cache_dir", None),
        backend=getattr(args, "backend", None),
    )


def _load_detector(args: argparse.Namespace):  # -> Detector (imported lazily: torch is slow to import)
    from probeguard.detector.pipeline import Detector

    settings = _settings(args)
    return Detector.load(default_bundle_path(args.bundle, settings), settings)


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
        results = detector.detect([t for _, _, t in pending], token_budget=args.batch_tokens, explain=args.explain)
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
            if len(pending) >= FLUSH_TEXTS:
                flush()
    if pending:
        flush()
    return failures


def _result_row(row_id: Any, text: str, result: Any, redact: str | None, redactor: Redactor) -> dict[str, Any]:
    row: dict[str, Any] = {"id": row_id, **result.to_dict()}
    if redact:
        row["redacted"] = redactor.redact(text, result.spans, redact)
    return row


def run_detect(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        print("error: give either a TEXT argument or --input FILE", file=sys.stderr)
        return 2
    detector = _load_detector(args)
    redactor = Redactor()
    if args.text is not None:
        (result,) = detector.detect([args.text], explain=args.explain)
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


def run_info(args: argparse.Namespace) -> int:
    from probeguard.detector.bundle import load_bundle
    from probeguard.detector.heads import head_level
    from probeguard.detector.host import default_host_state

    bundle = load_bundle(default_bundle_path(args.bundle))
    m = bundle.manifest
    settings = _settings(args)
    info = {
        "bundle": {"name": m.name, "version": m.version, "path": str(bundle.path), "created_at": m.created_at},
        "host": {**vars(m.host), "cache": default_host_state(settings.cache_dir)},
        "layers": list(m.layers),
        "heads": [
            {"name": e.config.name, "type": e.type, "level": head_level(e.type, e.config),
             "layers": list(e.config.layers_read),
             "active": e.config.active, "labels": list(e.config.labels), "thresholds": e.thresholds}
            for e in m.heads
        ],
        "saes": [{"name": n, **{k: v for k, v in vars(sae.config).items() if k != "name"}}
                 for n, sae in bundle.saes.items()],
        "metrics": m.metrics,
    }  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"bundle  {m.name} {m.version}  ({bundle.path})")
        print(f"host    {m.host.id}  sha256 {m.host.sha256[:16]}…  layers read {list(m.layers)} of {m.host.num_layers}")
        for h in info["heads"]:
            state = "" if h["active"] else "  (inactive)"
            layers = "+".join(str(k) for k in h["layers"])
            thresholds = ", ".join(f"{label} {h['thresholds'][label]:.3g}" for label in h["labels"])
            print(f"head    {h['name']:<16} {h['type']:<22} layer {layers:<5} {thresholds}{state}")
        for sae in info["saes"]:
            print(f"sae     {sae['name']:<16} {sae['activation']:<16} layer {sae['layer']:<3} d_sae {sae['d_sae']}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    """Fill the cache ahead of serving: convert the host and export the bundle's graph, then list what is there. A
    service (or replica) started on that cache, even mounted read-only, converts and exports nothing."""
    import time

    from probeguard.detector.pipeline import Detector

    settings = _settings(args)
    started = time.perf_counter()
    detector = Detector.load(default_bundle_path(args.bundle, settings), settings)
    info = detector.info()
    cache = settings.cache_dir.resolve()
    graph = getattr(detector.backend, "path", None)  # the ONNX backend's graph file; torch serves the host as is
    folders = [p for p in (detector.host.path.resolve().parent, graph and Path(graph).resolve().parent)
               if p is not None and p.is_relative_to(cache)]  # fmt: skip
    files = sorted(p for f in folders for p in f.rglob("*") if p.is_file() and p.name != ".lock")
    report = {
        "cache": str(cache),
        "bundle": f"{info['bundle']['name']}/{info['bundle']['version']}",
        "backend": detector.backend.name,
        "seconds": round(time.perf_counter() - started, 1),
        "megabytes": round(sum(p.stat().st_size for p in files) / 2**20, 1),
        "folders": [str(f.relative_to(cache)) for f in folders],
        "files": [str(p.relative_to(cache)) for p in files],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"prepared {report['cache']} for {report['bundle']} ({report['backend']}) in {report['seconds']} s: "
              f"{len(files)} files, {report['megabytes']} MB")  # fmt: skip
        print(f"serve with PROBEGUARD_CACHE={report['cache']}; the folder may be mounted read-only")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from probeguard.detector.doctor import check_machine

    return check_machine(_settings(args), args.bundle, as_json=args.json)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", help=BUNDLE_HELP)
    add_host_model_arg(p)
    p.add_argument("--cache-dir", type=Path, help="cache folder (default: $PROBEGUARD_CACHE or ~/.cache/probeguard)")
    p.add_argument("--threads", type=_positive_int, help="inference threads (default: $PROBEGUARD_NUM_THREADS or 1)")


def configure_detect(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("text", nargs="?", help="the text to score")
    p.add_argument("--input", type=Path, help="JSONL input, one {'id', 'text'} object per line")
    p.add_argument("--output", help="JSONL output (default: stdout)")
    p.add_argument(
        "--batch-tokens",
        type=_positive_int,
        help="padded tokens per forward pass (default: $PROBEGUARD_BATCH_TOKENS or 4096)",
    )
    p.add_argument("--redact", choices=REDACT_MODES, help="also return the text with spans redacted")
    p.add_argument("--explain", action="store_true",
                   help="add each text's explanation: SAE features, tokens and training rows behind every flagged "
                        "category, features and validator behind every span")  # fmt: skip


def configure_features(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="+", type=int, help="feature ids of the bundle's SAE (as an explanation cites them)")
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument("--json", action="store_true")


def run_features(args: argparse.Namespace) -> int:
    """Print what the bundle stores about SAE features: top tokens, top contexts (redacted), association by source."""
    from probeguard.detector.bundle import load_bundle

    bundle = load_bundle(default_bundle_path(args.bundle))
    art = bundle.explain
    if art is None:
        raise ConfigError(f"bundle {bundle.manifest.name} {bundle.manifest.version} stores no feature labels: "
                          "retrain it with the [sae] section enabled")  # fmt: skip
    d_sae = bundle.saes[art.sae].config.d_sae
    bad = [i for i in args.ids if not 0 <= i < d_sae]
    if bad:
        raise ConfigError(f"feature ids {bad} are outside 0..{d_sae - 1} (SAE {art.sae})")
    out = []
    for i in args.ids:
        label = art.labels.get(i)
        share = art.fire_share[i]
        top = sorted(range(len(art.sources)), key=lambda j: -float(share[j]))[:5]
        out.append({
            "id": i, "sae": art.sae, "live": label is not None,
            "fire_rate": label.fire_rate if label else 0.0,
            "top_tokens": [list(t) for t in label.top_tokens] if label else [],
            "contexts": [dataclasses.asdict(c) for c in label.contexts] if label else [],
            "sources": [{**dataclasses.asdict(art.sources[j]), "fires_on": round(float(share[j]), 4)} for j in top],
        })  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for f in out:
        if not f["live"]:
            print(f"feature {f['id']}: never fired on the sampled training text (dead)\n")
            continue
        tokens = ", ".join(f"{t!r} x{n}" for t, n in f["top_tokens"])
        print(f"feature {f['id']}  fires on {100 * f['fire_rate']:.2f} % of sampled tokens\n  tokens   {tokens}")
        for c in f["contexts"]:
            if c["text"] is None:
                print(f"  context  [{c['source']} row {c['row']}: {c['licence']}, text not redistributed]")
            else:
                s, e = c["mark"]
                shown = (c["text"][:s] + "[[" + c["text"][s:e] + "]]" + c["text"][e:]).replace("\n", " ")
                print(f"  context  {shown}   ({c['source']} row {c['row']}, {c['licence']})")
        for src in f["sources"]:
            print(f"  source   {src['name']:<28} {src['category']}/{src['role']:<10} fires on {src['fires_on']:.1%} "
                  "of its rows")  # fmt: skip
        print()
    return 0


def configure_info(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--json", action="store_true")


def configure_prepare(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--backend", choices=("onnx", "torch"), help="default: $PROBEGUARD_BACKEND or onnx")
    p.add_argument("--json", action="store_true")


def configure_doctor(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--json", action="store_true")
