"""API fuzzing with schemathesis against the app's own OpenAPI schema, on a real `probeguard serve` (tiny host):
generated requests must never get a server error, and every response must match the schema. More examples:
PROBEGUARD_FUZZ_EXAMPLES=2000."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from probeguard.loadtest.server import running_server  # noqa: E402
from tests.bundles import make_bundle  # noqa: E402
from tests.tiny import build_tiny_host  # noqa: E402

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = int(os.environ.get("PROBEGUARD_FUZZ_EXAMPLES", "150"))


def _start() -> tuple[contextlib.AbstractContextManager, str]:
    root = Path(tempfile.mkdtemp(prefix="probeguard-fuzz-"))
    host = build_tiny_host(root / "host", "gemma3_text")
    make_bundle(root / "bundle", host)
    env = {"PROBEGUARD_CACHE": str(root / "cache"), "PROBEGUARD_HOST_PATH": str(host),
           "PROBEGUARD_BUNDLE": str(root / "bundle"), "PROBEGUARD_BACKEND": "torch",
           "PROBEGUARD_AUTH_TOKEN": "fuzz-token"}  # fmt: skip
    ctx = running_server(env, timeout_s=120)
    base, _ = ctx.__enter__()
    return ctx, base


# schemathesis needs the schema when this module is collected, so the server starts here (and stops below).
_SERVER, BASE = _start()
schema = schemathesis.openapi.from_url(f"{BASE}/schema/openapi.json")


def teardown_module() -> None:
    _SERVER.__exit__(None, None, None)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case):
    case.headers = {**(case.headers or {}), "authorization": "Bearer fuzz-token"}
    # The API has rules beyond its schema (exactly one of text/messages, non-blank text, size limits) and answers
    # them with documented 413/422s, so "schema-valid but rejected" is expected; every other check stays on.
    case.call_and_validate(base_url=BASE, excluded_checks=[positive_data_acceptance])
