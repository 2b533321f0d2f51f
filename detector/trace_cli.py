"""`probeguard trace`: run the full host once over a text (or each message of a chat) and print, per category, its
score at every layer, the layer where it first crosses its threshold, and per-token scores at the served layer;
`--png OUT` draws it (score by layer; a token heat strip). Offline and debug only: serving stays truncated."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from probeguard.detector.errors import ConfigError, InputError
from probeguard.detector.trace import LayerTrace, LayerTracer

TOP_TOKENS = 8  # tokens listed per category in the text output (the JSON has every token)


def configure_trace(p: argparse.ArgumentParser) -> None:
    from probeguard.detector.commands import _common

    p.add_argument("text", nargs="?", help="the text to trace")
    p.add_argument("--messages", type=Path, help="a JSON file: a list of {'role', 'content'} messages, each traced")
    p.add_argument("--png", type=Path, help="draw the trace into this PNG (one panel pair per message)")
    p.add_argument("--json", action="store_true", help="print the trace as JSON")
    _common(p)


def load_tracer(args: argparse.Namespace) -> LayerTracer:
    from probeguard.detector.bundle import load_bundle
    from probeguard.detector.commands import _settings
    from probeguard.detector.host import resolve_host
    from probeguard.detector.paths import default_bundle_path
    from probeguard.detector.tokenize import HostTokenizer

    settings = _settings(args)
    bundle = load_bundle(default_bundle_path(args.bundle, settings))
    host = resolve_host(bundle.manifest.host.id, settings.cache_dir, settings.host_path)
    tokenizer = HostTokenizer.from_folder(host.path)
    return LayerTracer.load(
        host.path, tokenizer, bundle.trace, settings.window_tokens, settings.window_overlap, settings.num_threads
    )


def read_messages(path: Path) -> list[tuple[str, str]]:
    """(role, content) pairs from a JSON list of {'role', 'content'} objects; InputError when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--messages {path}: not a readable JSON file ({type(exc).__name__})") from None

    def is_message(m: object) -> bool:
        return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)

    if not isinstance(data, list) or not data or not all(is_message(m) for m in data):
        raise InputError(f"--messages {path}: expected a non-empty JSON list of {{'role', 'content'}} strings")
    return [(m["role"], m["content"]) for m in data]


def render_text(label: str, text: str, trace: LayerTrace) -> str:
    layers = trace.layers
    lines = [f"== {label} ({len(trace.tokens)} tokens, {trace.windows} window(s); served layer {trace.served_layer})",
             "   (a mean-pooled probe per layer; the served score is the served head's, at the served layer)",
             "layer      " + " ".join(f"{k:>5}" for k in layers)]  # fmt: skip
    for name, c in trace.categories.items():
        lines.append(f"{name[:10]:<10} " + " ".join(f"{s:5.2f}" for s in c.scores))
        lines.append(f"{'threshold':<10} " + " ".join(f"{t:5.2f}" for t in c.thresholds))
        crossing = ("never crosses its threshold" if c.first_crossing is None
                    else f"first crosses its threshold at layer {layers[c.first_crossing]}")  # fmt: skip
        lines.append(f"  {name}: {crossing}")
        top = sorted(trace.tokens, key=lambda t: -t.scores[name])[:TOP_TOKENS]
        shown = ", ".join(f"{text[t.start : t.end]!r} {t.scores[name]:.2f}" for t in top)
        lines.append(f"  top tokens at layer {trace.served_layer}: {shown}")
    return "\n".join(lines)


def run_trace(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.messages is None):
        raise ConfigError("give a TEXT or --messages FILE (one of them)")
    items = [("text", args.text)] if args.text is not None else read_messages(args.messages)
    if any(not content.strip() for _, content in items):
        raise InputError("nothing to trace: a text or message is empty")
    tracer = load_tracer(args)
    traces = [(role, content, tracer.trace(content)) for role, content in items]
    if args.png:
        from probeguard.detector.trace_plot import draw_traces

        draw_traces(traces, args.png)
    if args.json:
        out = [{"role": role, **asdict(t)} for role, _, t in traces]
        json.dump(out[0] if args.text is not None else out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(render_text(role, content, t) for role, content, t in traces))
    return 0
