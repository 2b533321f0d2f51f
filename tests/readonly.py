"""Run a command with one folder read-only, also as root (CI runs as root, and root ignores file modes): inside a
private mount namespace where the folder is a read-only bind mount (`unshare -m`), else by file modes."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def _bind_mount_works(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0"', str(folder)],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


def read_only(folder: Path, argv: Sequence[str]) -> list[str]:
    """`argv` wrapped so that `folder` (and all below it) cannot be written. Fails under CI=true when neither way
    can enforce it; skips elsewhere."""
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    if _bind_mount_works(folder):
        return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder), *argv]
    if os.geteuid() != 0:
        return list(argv)
    if os.environ.get("CI") == "true":
        pytest.fail("running as root without unshare -m: a read-only folder cannot be enforced")
    pytest.skip("root ignores file modes and unshare -m is not permitted here")
    raise AssertionError  # unreachable: skip raises
