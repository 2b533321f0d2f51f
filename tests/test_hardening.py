"""Hardening: odd inputs get documented statuses, a bad bundle stops `serve` at startup, a read-only cache is a clear
error. (In-process app on a tiny host; the real-process overload/SIGTERM test is in test_serve_process.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import pytest
from litestar.exceptions import ClientException

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.errors import HostError
from probeguard.service.errors import body_not_utf8
from tests.bundles import make_bundle
from tests.readonly import read_only
from tests.service_client import service_client, wait_ready


@pytest.fixture(scope="module")
def hard_client(tmp_path_factory, tiny_hosts):
    tmp = tmp_path_factory.mktemp("hard")
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp / "bundle", host)
    det = Detector.load(
        tmp / "bundle", DetectorSettings(cache_dir=tmp / "cache", host_path=host, max_chars=5000, backend="torch")
    )
    with service_client(det) as c:
        wait_ready(c)
        yield c


ODD_BUT_VALID = [
    "\u202eRTL override \u200b zero\u200dwidth \ufeff BOM",
    "control \x00\x01\x07\x1b chars",
    "a" * 4000,  # one very long "word"
    "😀" * 500,
    "東京都千代田区" * 50,
    "\t\n mixed whitespace around text \r\n",
]


@pytest.mark.parametrize("text", ODD_BUT_VALID, ids=range(len(ODD_BUT_VALID)))
def test_odd_but_valid_text_is_scored(hard_client, text):
    r = hard_client.post("/v1/detect", json={"text": text, "redact": "mask"})
    assert r.status_code == 200
    body = r.json()
    assert len(body["redacted"]) == len(text)
    assert all(0 <= s["start"] < s["end"] <= len(text) for s in body["spans"])


RAW_BAD = [
    ('{"text": "\\ud800 lone surrogate"}', 400),  # msgspec refuses a lone surrogate as malformed JSON
    ('{"text": "ok"}{"text": "two documents"}', 400),
    ("[" * 5000 + "]" * 5000, 400),
    ('{"text": {"nested": {"deep": ["x"]}}}', 422),
    ('{"messages": null}', 422),
    ('"just a string"', 422),
    ("", 422),
]


@pytest.mark.parametrize(("raw", "status"), RAW_BAD, ids=range(len(RAW_BAD)))
def test_raw_bad_bodies(hard_client, raw, status):
    r = hard_client.post("/v1/detect", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_ten_thousand_messages_is_413_and_huge_body_is_413(hard_client):
    body = {"messages": [{"role": "user", "content": "x"}] * 10_000}
    assert hard_client.post("/v1/detect", json=body).status_code == 413
    big = b'{"text": "' + b"a" * (50 * 1024 * 1024) + b'"}'
    r = hard_client.post("/v1/detect", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.slow
def test_serve_refuses_a_corrupt_bundle_at_startup(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    manifest = tmp_path / "bundle" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["heads"][0]["thresholds"]["PERSON"] = 7
    manifest.write_text(json.dumps(data))
    env = {**os.environ, "PROBEGUARD_CACHE": str(tmp_path / "cache"), "PROBEGUARD_HOST_PATH": str(host),
           "PROBEGUARD_BUNDLE": str(tmp_path / "bundle"), "PROBEGUARD_PORT": "1"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "probeguard", "serve"], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert "BundleCorruptError" in proc.stderr and "threshold of PERSON" in proc.stderr


def test_read_only_cache_is_a_clear_error(tmp_path, tiny_hosts):
    """An empty cache that cannot be written (read-only bind mount as root, file modes otherwise) stops the command
    with the cache named, exit code 2, no traceback."""
    cache = tmp_path / "ro"
    cache.mkdir()
    make_bundle(tmp_path / "bundle", tiny_hosts("gemma3_text"))
    argv = [sys.executable, "-m", "probeguard", "detect", "hello", "--bundle", str(tmp_path / "bundle"),
            "--host-model", str(tiny_hosts("gemma3_text")), "--cache-dir", str(cache)]  # fmt: skip
    proc = subprocess.run(read_only(cache, argv), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PROBEGUARD_BACKEND": "onnx"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "HostError" in proc.stderr and "cannot create graph cache" in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_cache_path_is_a_clear_error(tmp_path, tiny_hosts):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    make_bundle(tmp_path / "bundle", tiny_hosts("gemma3_text"))
    settings = DetectorSettings(cache_dir=blocker / "cache", host_path=tiny_hosts("gemma3_text"), backend="onnx")
    with pytest.raises(HostError, match="cannot create graph cache"):
        Detector.load(tmp_path / "bundle", settings)


def test_canary_never_leaks_from_any_route(hard_client, caplog):
    """A unique PII canary sent through every route and error path never appears in logs, metrics, error bodies or
    the OpenAPI document."""
    caplog.set_level("DEBUG")
    canary = "Quillon Vexmoor-88213 quillon.vexmoor@canary-mail.test"
    c = hard_client
    responses = [
        c.post("/v1/detect", json={"text": canary}),
        c.post("/v1/detect", json={"text": canary, "redact": "hash"}),
        c.post("/v1/detect", json={"messages": [{"role": "user", "content": canary}], "categories": ["nope"]}),
        c.post("/v1/detect", json={"text": canary * 400}),
        c.post("/v1/detect", json={"text": canary, "extra": canary}),
        c.post("/v1/detect", content=canary.encode(), headers={"content-type": "application/json"}),
        c.post("/v1/detect/batch", json={"items": [{"text": canary}] * 9}),
        c.post("/v1/detect/batch", json={"items": [{"text": canary, "redact": canary}]}),
        c.post("/admin/reload", json={"bundle": canary}),
        c.post(f"/v1/{canary}", json={"text": canary}),
    ]
    for r in responses:
        if r.status_code != 200:
            assert "Quillon" not in r.text and "canary-mail" not in r.text, r.text
    assert "Quillon" not in c.get("/metrics").text
    assert "Quillon" not in c.get("/schema/openapi.json").text
    server_logs = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records if r.name != "httpx")
    assert "Quillon" not in server_logs and "canary-mail" not in server_logs


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise ClientException("decode failed") from inner
    except ClientException as outer:
        return outer


def test_a_non_utf8_body_is_named_whichever_layer_noticed_it():
    assert body_not_utf8(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))  # Python's own decode
    assert body_not_utf8(_raised_from(msgspec.DecodeError("Invalid UTF-8 encoded string")))  # msgspec >= 0.23
    assert not body_not_utf8(_raised_from(msgspec.DecodeError("Expected `object`, got `int`")))
    assert not body_not_utf8(ClientException("bad request"))
