"""Host resolution and the converted-host cache check, without converting anything (tiny host stands in)."""

from __future__ import annotations

import json
import shutil

import pytest

from probeguard.detector.errors import HostError
from probeguard.detector.host import (
    DEFAULT_HOST_ID,
    default_host_dir,
    ensure_default_host,
    resolve_host,
    weights_sha256,
)


def _fake_cache(tmp_path, tiny_folder, sha: str | None = None):
    root = default_host_dir(tmp_path)
    shutil.copytree(tiny_folder, root / "hf")
    record = {"id": DEFAULT_HOST_ID, "weights_sha256": sha or weights_sha256(root / "hf")}
    (root / "host.json").write_text(json.dumps(record))
    return root


def test_cached_host_is_hash_checked(tmp_path, tiny_hosts):
    root = _fake_cache(tmp_path, tiny_hosts("gemma3_text"))
    info = ensure_default_host(tmp_path)
    assert info.path == root / "hf" and info.sha256 == weights_sha256(root / "hf")


def test_tampered_cache_is_refused(tmp_path, tiny_hosts):
    root = _fake_cache(tmp_path, tiny_hosts("gemma3_text"))
    weights = root / "hf" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(HostError, match=r"do not match .*weights_sha256"):
        ensure_default_host(tmp_path)


def test_unreadable_record_is_refused(tmp_path, tiny_hosts):
    root = _fake_cache(tmp_path, tiny_hosts("gemma3_text"))
    (root / "host.json").write_text("{")
    with pytest.raises(HostError, match="unreadable"):
        ensure_default_host(tmp_path)


def test_unknown_host_needs_a_path(tmp_path):
    with pytest.raises(HostError, match="PROBEGUARD_HOST_PATH"):
        resolve_host("someone/else", tmp_path)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(HostError, match=r"no config\.json"):
        resolve_host(DEFAULT_HOST_ID, tmp_path, host_path=tmp_path)
