"""`probeguard prepare` fills a cache ahead of serving; a detector started on a prepared cache writes nothing there
(no lock, no conversion, no export), so the cache can be built into an image or a shared read-only volume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from probeguard.cli import main
from probeguard.detector import Detector, DetectorSettings
from probeguard.loadtest.server import running_server
from tests.bundles import make_bundle
from tests.readonly import read_only


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` with its size and modification time: a write of any kind changes it."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in [root, *root.rglob("*")]}


@pytest.mark.slow
def test_prepare_exports_once_and_a_prepared_cache_is_only_read(tmp_path, tiny_hosts, monkeypatch, capsys):
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    cache = tmp_path / "cache"
    args = ["prepare", "--bundle", str(tmp_path / "bundle"), "--host-model", str(host), "--cache-dir", str(cache)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"].startswith("onnx") and len(report["folders"]) == 1, "a host folder given is not cached"
    assert any(f.endswith("model.onnx") for f in report["files"]) and ".lock" not in str(report["files"])
    before = tree_state(cache)

    def no_export(*_a: object, **_k: object) -> None:
        raise AssertionError("a prepared cache must not be exported into again")

    monkeypatch.setattr("probeguard.detector.export.export_fp32", no_export)
    monkeypatch.setattr("probeguard.detector.export.exclusive_lock", no_export)
    settings = DetectorSettings(cache_dir=cache, host_path=host, backend="onnx")
    (result,) = Detector.load(tmp_path / "bundle", settings).detect(["Anna Schmidt, anna@example.org"])
    assert set(result.categories) == {"unsafe", "prompt_injection"}
    assert main(args) == 0 and "serve with PROBEGUARD_CACHE=" in capsys.readouterr().out
    assert tree_state(cache) == before


@pytest.mark.integration
def test_service_on_a_read_only_prepared_cache_starts_without_conversion_or_export(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROBEGUARD_CACHE"}
    proc = subprocess.run([sys.executable, "-m", "probeguard", "prepare", "--json"], env=env, capture_output=True,
                          text=True, timeout=1200)  # fmt: skip  # a no-op when other tests built the default cache
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    cache = tmp_path / "cache"
    for folder in report["folders"]:  # only what the default bundle needs: the converted host and its graph
        shutil.copytree(Path(report["cache"]) / folder, cache / folder, ignore=shutil.ignore_patterns(".lock"))
    command = read_only(cache, [sys.executable, "-m", "probeguard"])
    before = tree_state(cache)
    started = time.perf_counter()
    serve_env = {**env, "PROBEGUARD_CACHE": str(cache), "PROBEGUARD_NUM_THREADS": "1"}
    with running_server(serve_env, log=tmp_path / "serve.log", timeout_s=300, command=command) as (base, _):
        ready_s = time.perf_counter() - started
        r = httpx.post(f"{base}/v1/detect", json={"text": "Mail anna.schmidt@example.org, thanks"}, timeout=60)
        assert r.status_code == 200 and [s["label"] for s in r.json()["spans"]] == ["EMAIL"]
    log = (tmp_path / "serve.log").read_text()
    assert "converted default host" not in log and "exported ONNX graph" not in log
    assert tree_state(cache) == before, "the service wrote into its prepared cache"
    print(f"ready on a read-only prepared cache in {ready_s:.1f} s")
