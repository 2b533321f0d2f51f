"""A real `probeguard serve` process on a free loopback port (tiny host, ONNX backend): routes, overload, SIGTERM."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import pytest

from loadtest.server import rss_mb, running_server
from tests.bundles import make_bundle


@pytest.fixture
def server(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    env = {"PROBEGUARD_CACHE": str(tmp_path / "cache"), "PROBEGUARD_HOST_PATH": str(host),
           "PROBEGUARD_BUNDLE": str(tmp_path / "bundle"), "PROBEGUARD_QUEUE_TOKENS": "600",
           "PROBEGUARD_BATCH_TOKENS": "300", "PROBEGUARD_WINDOW_TOKENS": "256",
           "PROBEGUARD_BATCH_WAIT_MS": "5"}  # fmt: skip
    log = tmp_path / "server.log"
    with running_server(env, log=log, timeout_s=180) as (base, proc):
        yield base, proc, log


def test_serve_routes_overload_and_sigterm(server):
    base, proc, log_path = server
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["backend"] == "onnx-cpu"
    r = httpx.post(f"{base}/v1/detect", json={"text": "Hi, I'm Anna, anna@example.org"})
    assert r.status_code == 200 and r.json()["bundle"] == "test-bundle"

    # Overload: many concurrent long requests against a 600-token queue: some are shed with 429 + Retry-After,
    # every request gets an answer, memory does not grow round after round, and the service answers afterwards.
    text = "Anna Schmidt lives at 221B Baker Street, London. " * 12
    with httpx.Client(timeout=60) as client, concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda _: client.post(f"{base}/v1/detect", json={"text": text}), range(16)))  # warm up
        rss_before = rss_mb(proc.pid)
        statuses = list(pool.map(lambda _: client.post(f"{base}/v1/detect", json={"text": text}), range(64)))
        for _ in range(3):  # two more overload rounds: memory must not ratchet up
            list(pool.map(lambda _: client.post(f"{base}/v1/detect", json={"text": text}), range(64)))
        rss_after = rss_mb(proc.pid)
    assert rss_after - rss_before < 150, (rss_before, rss_after)
    codes = [s.status_code for s in statuses]
    assert set(codes) <= {200, 429} and 200 in codes and 429 in codes, codes
    assert all(int(s.headers["retry-after"]) >= 1 for s in statuses if s.status_code == 429), "computed Retry-After"
    assert httpx.post(f"{base}/v1/detect", json={"text": "recovered"}).status_code == 200

    # SIGTERM while requests are in flight: they complete, the process exits 0.
    with httpx.Client(timeout=60) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.post, f"{base}/v1/detect", json={"text": text[:300]}) for _ in range(4)]
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        finished = [f.result() for f in futures]
    codes = [r.status_code for r in finished]
    assert set(codes) <= {200, 429, 503} and 200 in codes, codes
    assert proc.wait(timeout=60) == 0
    log_text = log_path.read_text()
    assert '"msg": "shutdown"' in log_text and "Anna" not in log_text
    assert f"Uvicorn running on {base}" in log_text, "the log names the bound address and port"
