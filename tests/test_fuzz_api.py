"""API fuzzing with schemathesis against the app's own OpenAPI schema, on a real `probeguard serve` (tiny host):
generated requests must never get a server error, and every response must match the schema. More examples:
PROBEGUARD_FUZZ_EXAMPLES=2000."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from tests.bundles import make_bundle  # noqa: E402
from tests.tiny import build_tiny_host  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("PROBEGUARD_FUZZ_EXAMPLES", "150"))


def _start(tmp: str) -> tuple[str, subprocess.Popen]:
    from pathlib import Path

    root = Path(tmp)
    host = build_tiny_host(root / "host", "gemma3_text")
    make_bundle(root / "bundle", host)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PROBEGUARD_CACHE": str(root / "cache"), "PROBEGUARD_HOST_PATH": str(host),
           "PROBEGUARD_BUNDLE": str(root / "bundle"), "PROBEGUARD_PORT": str(port), "PROBEGUARD_BACKEND": "torch",
           "PROBEGUARD_AUTH_TOKEN": "fuzz-token"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "detector.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return base, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fuzz server did not start")


_tmp = __import__("tempfile").mkdtemp(prefix="probeguard-fuzz-")
BASE, PROC = _start(_tmp)
schema = schemathesis.openapi.from_url(f"{BASE}/schema/openapi.json")


def teardown_module() -> None:
    PROC.terminate()
    PROC.wait(timeout=30)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case):
    case.headers = {**(case.headers or {}), "authorization": "Bearer fuzz-token"}
    # The API has rules beyond its schema (exactly one of text/messages, non-blank text, size limits) and answers
    # them with documented 413/422s, so "schema-valid but rejected" is expected; every other check stays on.
    case.call_and_validate(base_url=BASE, excluded_checks=[positive_data_acceptance])
