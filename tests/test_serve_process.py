"""A real `probeguard serve` process on a free loopback port (tiny host, ONNX backend): routes, overload, SIGTERM."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import pytest

from probeguard.loadtest.server import rss_mb, running_server
from tests.bundles import make_bundle

pytestmark = pytest.mark.slow


def _env(tmp_path, host, batch_wait_ms: int) -> dict[str, str]:
    return {"PROBEGUARD_CACHE": str(tmp_path / "cache"), "PROBEGUARD_HOST_PATH": str(host),
            "PROBEGUARD_BUNDLE": str(tmp_path / "bundle"), "PROBEGUARD_QUEUE_TOKENS": "600",
            "PROBEGUARD_BATCH_TOKENS": "300", "PROBEGUARD_WINDOW_TOKENS": "256",
            "PROBEGUARD_BATCH_WAIT_MS": str(batch_wait_ms)}  # fmt: skip


@pytest.fixture
def server(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    log = tmp_path / "server.log"
    with running_server(_env(tmp_path, host, 5), log=log, timeout_s=180) as (base, proc):
        yield base, proc, log


def _queued_tokens(base: str) -> float:
    line = next(x for x in httpx.get(f"{base}/metrics").text.splitlines() if x.startswith("probeguard_queue_depth"))
    return float(line.split()[-1])


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

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    log_text = log_path.read_text()
    assert '"msg": "shutdown"' in log_text and "Anna" not in log_text
    assert f"Uvicorn running on {base}" in log_text, "the log names the bound address and port"


def test_sigterm_drains_queued_requests_and_exits_0(tmp_path, tiny_hosts):
    """A request seen in the queue when SIGTERM arrives is answered 200, then the process exits 0. An idle batcher
    waits PROBEGUARD_BATCH_WAIT_MS (1 s here, the most it allows) for company: long enough to see it queued."""
    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    text = "Anna Schmidt lives at 221B Baker Street, London."
    with (
        running_server(_env(tmp_path, host, 1000), log=tmp_path / "drain.log", timeout_s=180) as (base, proc),
        httpx.Client(timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        messages = [{"role": "user", "content": text}] * 3
        futures = [pool.submit(client.post, f"{base}/v1/detect", json={"messages": messages})]
        deadline = time.monotonic() + 30
        while _queued_tokens(base) == 0:  # event: the request is in the queue (the batcher is waiting on it)
            assert time.monotonic() < deadline and not any(f.done() for f in futures), "never saw them queued"
        proc.send_signal(signal.SIGTERM)
        codes = [f.result().status_code for f in futures]
        assert proc.wait(timeout=60) == 0
    assert codes == [200]
