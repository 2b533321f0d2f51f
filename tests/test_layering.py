"""Package layering, read from the source: the library never imports the service, training or the CLI root, and no
module-level import cycle exists between the project's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("probeguard", "detector", "service", "training", "loadtest")  # each installs as probeguard.<folder>
LIBRARY = "probeguard.detector"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts if parts[0] == "probeguard" else ["probeguard", *parts])


def _imports(path: Path) -> set[str]:
    """Project modules a file imports, at module level or inside functions (lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == "probeguard"}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}


def test_the_library_never_imports_up():
    offenders = {
        name: sorted(i for i in _imports(path) if not (i == LIBRARY or i.startswith(LIBRARY + ".")))
        for name, path in _modules().items()
        if name.startswith(LIBRARY)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycle():
    modules = _modules()
    graph = {
        name: {i if i in modules else i.rsplit(".", 1)[0] for i in _imports(path)} & set(modules)
        for name, path in modules.items()
    }
    for name in modules:  # importing a package's submodule runs the package's __init__ first
        parent = name.rsplit(".", 1)[0]
        if "." in name and parent in modules:
            graph[name].discard(parent)
        graph[name].discard(name)  # `from package import submodule` inside the package's own __init__
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
