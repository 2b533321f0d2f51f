"""The `probeguard` command: one table of subcommands, each a module with `configure(parser)` and `run(args)`.

Only the chosen subcommand's module is imported (torch, the service and the training stack are slow to import).
A subcommand that needs an optional extra (`train`, `eval`) and cannot import it fails with an error naming the extra
and the missing module; any other ImportError is a bug and propagates.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from probeguard.detector.errors import ConfigError, ProbeguardError

_OWN_PACKAGES = frozenset({"probeguard"})  # a missing module of our own is a bug, never a missing extra


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # imported only when this command runs
    configure: str = "configure"  # module attribute: (argparse.ArgumentParser) -> None
    run: str = "run"  # module attribute: (argparse.Namespace) -> exit code
    extra: str | None = None  # pip extra the module needs beyond the core install


COMMANDS: tuple[Command, ...] = (
    Command("detect", "score a text, or a JSONL file of {id, text} rows", "probeguard.detector.commands",
            "configure_detect", "run_detect"),
    Command("info", "describe a bundle: host, layers, heads, labels, thresholds", "probeguard.detector.commands",
            "configure_info", "run_info"),
    Command("features", "what the bundle knows about SAE features: top tokens, contexts, sources they fire on",
            "probeguard.detector.commands", "configure_features", "run_features"),
    Command("trace", "follow a text's category scores through every layer of the host (offline, full host)",
            "probeguard.detector.trace_cli", "configure_trace", "run_trace"),
    Command("doctor", "check host, cache, runtime and truncated-vs-full parity; non-zero on failure",
            "probeguard.detector.commands", "configure_doctor", "run_doctor"),
    Command("prepare", "fill a cache ahead of serving (host converted, graph exported): replicas start in seconds",
            "probeguard.detector.commands", "configure_prepare", "run_prepare"),
    Command("serve", "serve a bundle over HTTP (the sidecar)", "probeguard.service.cli"),
    Command("train", "train a bundle from a TOML config", "probeguard.training.train", extra="train"),
    Command("eval", "score a bundle on labelled data or the dev suite (Presidio beside)",
            "probeguard.training.eval_cli", extra="train"),
)  # fmt: skip


class MissingExtraError(ConfigError):
    """A subcommand needs an optional dependency that is not installed."""


def _import(command: Command) -> ModuleType:
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if command.extra is None or not missing or missing in _OWN_PACKAGES:
            raise
        raise MissingExtraError(
            f"probeguard {command.name} needs the '{command.extra}' extra (missing module {missing!r}): "
            f"pip install 'probeguard[{command.extra}]'"
        ) from exc


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand name: the first argument that is not an option (the root takes no option values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probeguard", description="PII and unsafe-content detection from probes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = _chosen(argv)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.name == chosen:
            module = _import(command)
            configure: Callable[[argparse.ArgumentParser], None] = getattr(module, command.configure)
            configure(p)
            p.set_defaults(run=getattr(module, command.run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
        return int(args.run(args))
    except ProbeguardError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
