"""Where the shipped bundles live and which one is the default.

The checkout's `models/` folder is installed as the package `probeguard_models` (package data, see pyproject.toml), so
an installed wheel finds its bundles exactly as an editable checkout does. `PROBEGUARD_BUNDLE` overrides the default.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from detector.errors import BundleNotFoundError

MODELS_PACKAGE = "probeguard_models"
DEFAULT_BUNDLE_NAME = "probeguard-base"
_SOURCE_MODELS = Path(__file__).resolve().parent.parent / "models"  # running from a checkout that is not installed


def models_dir() -> Path:
    """The folder holding `<name>/<version>/` bundles: the installed `probeguard_models`, else the checkout's."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if (_SOURCE_MODELS / "__init__.py").is_file():
        return _SOURCE_MODELS
    raise BundleNotFoundError(
        f"no {MODELS_PACKAGE} package is installed and no models/ folder is beside the source; "
        "pass --bundle PATH or set PROBEGUARD_BUNDLE"
    )


def version_key(name: str) -> tuple[int, ...]:
    """Sort key of a bundle version folder name: "0.10.0" after "0.9.1"."""
    return tuple(int(x) for x in re.findall(r"\d+", name))


def shipped_bundles() -> list[Path]:
    """Every shipped `<name>/<version>/` bundle folder, under any name, oldest version first."""
    return sorted((m.parent for m in models_dir().glob("*/*/manifest.json")), key=lambda p: version_key(p.name))


def default_bundle_path() -> Path:
    """`PROBEGUARD_BUNDLE` if set, else the newest version of probeguard-base among the shipped bundles."""
    override = os.environ.get("PROBEGUARD_BUNDLE")
    if override:
        return Path(override).expanduser()
    root = models_dir() / DEFAULT_BUNDLE_NAME
    versions = sorted((p for p in root.glob("*") if (p / "manifest.json").is_file()), key=lambda p: version_key(p.name))
    if not versions:
        raise BundleNotFoundError(f"no bundle under {root}; pass --bundle PATH or set PROBEGUARD_BUNDLE")
    return versions[-1]
