"""Where bundles live and which one is served.

A bundle is named by a path (an existing path always wins) or by `<name>/<version>` (or `<name>` alone: its newest
version), looked up first in the models directory a deployment sets (`PROBEGUARD_MODELS_DIR`: bundles trained outside
the package) and then among the shipped ones, the package `probeguard.models`. `PROBEGUARD_BUNDLE`, `--bundle` and
`/admin/reload` all take the same names.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from probeguard.detector.errors import BundleNotFoundError

if TYPE_CHECKING:
    from probeguard.detector.settings import DetectorSettings

MODELS_PACKAGE = "probeguard.models"
DEFAULT_BUNDLE_NAME = "probeguard-base"
BUNDLE_HELP = "a bundle folder, or <name>/<version> (default: $PROBEGUARD_BUNDLE, else the newest probeguard-base)"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def shipped_models_dir() -> Path:
    """The folder of the shipped `<name>/<version>/` bundles (package data of `probeguard.models`)."""
    return Path(next(iter(importlib.import_module(MODELS_PACKAGE).__path__)))


def bundle_dirs(models_dir: Path | None = None) -> list[Path]:
    """Folders searched for `<name>/<version>`, in order: the deployment's models directory, then the shipped one."""
    return [*([models_dir.expanduser()] if models_dir is not None else []), shipped_models_dir()]


def version_key(name: str) -> tuple[int, ...]:
    """Sort key of a bundle version folder name: "0.10.0" after "0.9.1"."""
    return tuple(int(x) for x in re.findall(r"\d+", name))


def shipped_bundles() -> list[Path]:
    """Every shipped `<name>/<version>/` bundle folder, under any name, oldest version first."""
    return sorted((m.parent for m in shipped_models_dir().glob("*/*/manifest.json")), key=lambda p: version_key(p.name))


def is_bundle_name(name: str) -> bool:
    """`<name>/<version>` or `<name>` of plain parts: nothing that could leave the models folders (absolute, `..`)."""
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts)


def bundle_by_name(name: str, models_dir: Path | None = None) -> Path:
    """`<name>/<version>` or `<name>` (its newest version) in `bundle_dirs`; a name that is not `is_bundle_name` is
    refused, so the admin API can take it as it comes."""
    parts = name.split("/")
    if not is_bundle_name(name):
        raise BundleNotFoundError(f"bundle name {name!r}: expected '<name>/<version>' or '<name>'")
    dirs = bundle_dirs(models_dir)
    for root in dirs:
        if len(parts) == 2 and (root / name / "manifest.json").is_file():
            return root / name
        if len(parts) == 1:
            versions = [p.parent for p in (root / name).glob("*/manifest.json")]
            if versions:
                return max(versions, key=lambda p: version_key(p.name))
    raise BundleNotFoundError(f"no bundle {name!r} in {', '.join(str(d) for d in dirs)}")


def resolve_bundle(ref: str | Path, models_dir: Path | None = None) -> Path:
    """A bundle reference: an existing path wins, else a name looked up with `bundle_by_name`."""
    path = Path(ref).expanduser()
    if path.exists():
        return path
    return bundle_by_name(str(ref), models_dir)


def default_bundle_path(ref: str | Path | None = None, settings: DetectorSettings | None = None) -> Path:
    """The bundle a command serves: `ref` (its `--bundle`) if given, else the `bundle` setting (`PROBEGUARD_BUNDLE`),
    else the newest shipped probeguard-base; names are looked up in the `models_dir` setting first."""
    if settings is None:
        from probeguard.detector.settings import DetectorSettings

        settings = DetectorSettings.from_env()
    return resolve_bundle(ref or settings.bundle or DEFAULT_BUNDLE_NAME, settings.models_dir)
