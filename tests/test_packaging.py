"""Packaging: one `probeguard` namespace. The wheel lists every package of the source tree under it, ships the default
bundle and little else, and an installed wheel, run from outside the checkout, detects, serves and evaluates (the
integration test builds and installs it into a fresh venv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from probeguard.loadtest.server import running_server

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("probeguard", "detector", "service", "training", "loadtest", "models")  # probeguard.<folder> when installed
MAX_WHEEL_BYTES = 24 * 2**20  # the default bundle with its SAE (11 MB) and explain artifacts (8 MB)
SHARED = ROOT.parent / "shared" / "data"


def _configured() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_source_package_is_in_the_wheel_list_under_one_namespace():
    config = _configured()
    assert all(p == "probeguard" or p.startswith("probeguard.") for p in config["packages"])
    on_disk = set()
    for top in FOLDERS:
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            on_disk.add(".".join(parts if top == "probeguard" else ("probeguard", *parts)))
    assert on_disk == set(config["packages"]), "pyproject.toml [tool.setuptools] packages must list every package"
    mapped = {name: folder for name, folder in config["package-dir"].items()}
    assert mapped == {f"probeguard.{f}": f for f in FOLDERS if f != "probeguard"}


def test_experiments_are_not_installed():
    assert not any(p.startswith("experiments") for p in _configured()["packages"])


@pytest.mark.integration
def test_installed_wheel_detects_serves_and_evaluates_outside_the_checkout(tmp_path):
    # Build from a copy: setuptools keeps a build/ folder beside the sources, and a stale one would leak into wheels.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for top in FOLDERS:
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(dist)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = dist.glob("probeguard-*.whl")
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"wheel is {wheel.stat().st_size / 2**20:.1f} MB"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"probeguard"}, f"top-level entries besides probeguard: {tops - {'probeguard'}}"
    bundles = {n.rsplit("/", 2)[0] for n in names if n.endswith("/manifest.json")}
    assert 1 <= len(bundles) <= 2, bundles

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The fresh venv sees this environment's dependencies (torch, onnxruntime, the host packages) through a .pth
    # line; this environment's editable probeguard is not activated there (.pth files of an added path are not run).
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    shown = subprocess.run([sys.executable, "-m", "pip", "--python", py, "show", "-f", "probeguard"],
                           check=True, capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    installed_tops = {f.split("/")[0] for f in files if not f.startswith(("../", "probeguard-"))}
    assert installed_tops == {"probeguard"}, installed_tops
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PROBEGUARD_BUNDLE", "PYTHONPATH", "PROBEGUARD_MODELS_DIR")}
    for old in ("detector", "service", "training", "loadtest", "probeguard_models"):
        probe = subprocess.run([py, "-c", f"import {old}"], cwd=outside, env=env, capture_output=True, timeout=60)
        assert probe.returncode != 0, f"`import {old}` must fail outside the checkout"
    where = subprocess.run([py, "-c", "import probeguard.detector, probeguard.models as m; print(m.__path__[0])"],
                           cwd=outside, env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.strip().startswith(str(fresh_site / "probeguard" / "models")), where.stdout

    exe = str(venv / "bin" / "probeguard")
    info = subprocess.run([exe, "info"], cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert info.returncode == 0 and info.stdout.startswith("bundle  probeguard-base"), info.stderr[-2000:]
    proc = subprocess.run([exe, "detect", "Mail anna.schmidt@example.org, thanks", "--explain"], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout)
    assert [s["label"] for s in answer["spans"]] == ["EMAIL"]
    # the SAE and the explain artifacts are in the wheel: cited features carry their labels
    assert all(f["label"] for c in answer["explanation"]["categories"].values() for f in c["features"])

    with running_server(env, log=tmp_path / "serve.log", timeout_s=900, command=[exe], cwd=outside) as (base, _):
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["bundle"] == "probeguard-base"
        assert httpx.post(f"{base}/v1/detect", json={"text": "hello there"}).status_code == 200

    if not SHARED.is_dir():
        pytest.skip(f"eval --suite dev needs {SHARED}")
    out = tmp_path / "devsuite"
    suite = subprocess.run([exe, "eval", "--suite", "dev", "--shared-dir", str(SHARED), "--max-per-source", "3",
                            "--no-peer", "--out", str(out)], cwd=outside, env=env, capture_output=True, text=True,
                           timeout=900)  # fmt: skip
    assert suite.returncode == 0, suite.stderr[-2000:]
    report = json.loads((out / "devsuite.json").read_text())
    assert {"wikigold", "btc", "wnut17"} <= set(report["pii"]["sources"]) and "unsafe" in report["categories"]
