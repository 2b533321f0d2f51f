"""Where the shipped bundles live and which one is the default."""

from __future__ import annotations

import os
import re
from pathlib import Path

from detector.errors import BundleNotFoundError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_BUNDLE_NAME = "probeguard-base"


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def default_bundle_path() -> Path:
    """`PROBEGUARD_BUNDLE` if set, else the newest version under models/probeguard-base/."""
    override = os.environ.get("PROBEGUARD_BUNDLE")
    if override:
        return Path(override).expanduser()
    root = MODELS_DIR / DEFAULT_BUNDLE_NAME
    versions = sorted(
        (p for p in root.glob("*") if (p / "manifest.json").is_file()), key=lambda p: _version_key(p.name)
    )
    if not versions:
        raise BundleNotFoundError(f"no bundle under {root}; pass --bundle PATH or set PROBEGUARD_BUNDLE")
    return versions[-1]
