"""Bundle references: a path wins, else `<name>/<version>` or `<name>` in the models directory, then the shipped
bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probeguard.detector.errors import BundleNotFoundError
from probeguard.detector.paths import (
    DEFAULT_BUNDLE_NAME,
    bundle_by_name,
    default_bundle_path,
    resolve_bundle,
    shipped_bundles,
    shipped_models_dir,
)
from probeguard.detector.settings import DetectorSettings


def _fake_bundle(root: Path, name: str, version: str) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": name, "version": version}))
    return folder


def test_the_package_ships_the_default_bundle_and_at_most_one_variant():
    names = [f"{p.parent.name}/{p.name}" for p in shipped_bundles()]
    assert len(names) <= 2 and any(n.startswith(f"{DEFAULT_BUNDLE_NAME}/") for n in names), names


def test_names_resolve_in_the_models_dir_first_then_the_shipped_bundles(tmp_path):
    mine = _fake_bundle(tmp_path, "ours", "1.2.0")
    _fake_bundle(tmp_path, "ours", "1.10.0")
    assert bundle_by_name("ours/1.2.0", tmp_path) == mine
    assert bundle_by_name("ours", tmp_path).name == "1.10.0", "a name alone is its newest version"
    shipped = bundle_by_name(DEFAULT_BUNDLE_NAME, tmp_path)
    assert shipped.parent.parent == shipped_models_dir()
    shadow = _fake_bundle(tmp_path, DEFAULT_BUNDLE_NAME, shipped.name)
    assert bundle_by_name(f"{DEFAULT_BUNDLE_NAME}/{shipped.name}", tmp_path) == shadow, "the models dir comes first"


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x/1.0", "a/../../b", "a/b/c", "a/.", "./a", "a b/1"])
def test_names_that_could_leave_the_models_dirs_are_refused(tmp_path, name):
    with pytest.raises(BundleNotFoundError, match="expected '<name>/<version>'"):
        bundle_by_name(name, tmp_path)


def test_an_unknown_name_says_where_it_looked(tmp_path):
    with pytest.raises(BundleNotFoundError, match=f"no bundle 'nope/0.0.0' in {tmp_path}"):
        bundle_by_name("nope/0.0.0", tmp_path)


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch):
    folder = _fake_bundle(tmp_path / "elsewhere", "x", "1.0.0")
    monkeypatch.chdir(tmp_path / "elsewhere")
    _fake_bundle(tmp_path / "models", "x", "1.0.0")
    assert resolve_bundle("x/1.0.0", tmp_path / "models").resolve() == folder.resolve()


def test_the_bundle_setting_takes_a_name_and_a_models_dir(tmp_path):
    mine = _fake_bundle(tmp_path, "ours", "2.0.0")
    env = {"PROBEGUARD_BUNDLE": "ours/2.0.0", "PROBEGUARD_MODELS_DIR": str(tmp_path)}
    settings = DetectorSettings.from_env(env)
    assert default_bundle_path(settings=settings) == mine
    assert default_bundle_path("ours", settings) == mine, "--bundle beats the setting and takes names too"
    assert default_bundle_path(settings=DetectorSettings.from_env({})).parent.name == DEFAULT_BUNDLE_NAME
