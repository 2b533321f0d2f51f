"""Packaging: the wheel lists every package of the source tree, and an installed wheel, run from outside the
checkout, finds its shipped default bundle, detects and serves (the integration test builds and installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import httpx
import pytest

from loadtest.server import running_server

ROOT = Path(__file__).resolve().parent.parent


def _configured() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_source_package_is_in_the_wheel_list():
    config = _configured()
    source_dirs = {config["package-dir"].get(name, name.replace(".", "/")): name for name in config["packages"]}
    on_disk = {
        str(init.parent.relative_to(ROOT))
        for top in ("probeguard", "detector", "service", "training", "loadtest", "models")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk == set(source_dirs), "pyproject.toml [tool.setuptools] packages must list every package"


@pytest.mark.integration
def test_installed_wheel_detects_and_serves_outside_the_checkout(tmp_path):
    # Build from a copy: setuptools keeps a build/ folder beside the sources, and a stale one would leak into wheels.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for top in ("probeguard", "detector", "service", "training", "loadtest", "models"):
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(dist)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = dist.glob("probeguard-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The fresh venv sees this environment's dependencies (torch, onnxruntime, the host packages) through a .pth
    # line; this environment's editable probeguard is not activated there (.pth files of an added path are not run).
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)  # fmt: skip
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PROBEGUARD_BUNDLE", "PYTHONPATH")}
    exe = str(venv / "bin" / "probeguard")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import detector, probeguard_models; "
                            "print(detector.__file__); print(probeguard_models.__file__)"],
                           cwd=outside, env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert all(str(fresh_site) in line for line in where.stdout.splitlines()), where.stdout

    info = subprocess.run([exe, "info", "--json"], cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["bundle"]["path"].startswith(str(fresh_site / "probeguard_models"))

    proc = subprocess.run([exe, "detect", "Mail anna.schmidt@example.org, thanks"], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert [s["label"] for s in result["spans"]] == ["EMAIL"]

    with running_server(env, log=tmp_path / "serve.log", timeout_s=900, command=[exe], cwd=outside) as (base, _):
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["bundle"] == "probeguard-base"
        assert httpx.post(f"{base}/v1/detect", json={"text": "hello there"}).status_code == 200
