"""The sidecar in-process (Litestar test client with lifespan) on a tiny host: routes, errors, batching, metrics."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from probeguard.detector import Detector
from probeguard.service.metrics import Metrics
from tests.service_client import load_service_detector, service_client, wait_ready

TOKEN = "s3cret-token"
CANARY = "Zebulon Quartermaine-4417"


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory, tiny_hosts) -> Detector:
    return load_service_detector(tmp_path_factory.mktemp("svc"), tiny_hosts("gemma3_text"))


@pytest.fixture
def client(tiny_detector):
    with service_client(tiny_detector) as c:
        wait_ready(c)
        yield c


def test_health_ready_schema(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["bundle"] == "test-bundle" and ready["backend"] == "torch-cpu"
    schema = client.get("/schema/openapi.json").json()
    assert {"/v1/detect", "/v1/detect/batch", "/healthz", "/readyz"} <= set(schema["paths"])


def test_detect_text_matches_the_library(client, tiny_detector):
    text = "Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org."
    r = client.post("/v1/detect", json={"text": text, "redact": "replace", "return_scores": True})
    assert r.status_code == 200 and r.headers["x-request-id"]
    body = r.json()
    (lib,) = tiny_detector.detect([text])
    assert [(s["label"], s["start"], s["end"]) for s in body["spans"]] == [(s.label, s.start, s.end) for s in lib.spans]
    assert body["categories"]["unsafe"]["score"] == pytest.approx(lib.categories["unsafe"].score, abs=1e-4)
    assert "threshold" in body["categories"]["unsafe"] and body["bundle"] == "test-bundle"
    assert body["redacted"] == tiny_detector_redact(text, lib)
    assert set(body["timing_ms"]) == {"tokenize", "queue_and_inference", "answer_bound"}
    assert body["timing_ms"]["answer_bound"] == 500.0  # no rate measured yet (calibration off): the latency budget


def test_request_thresholds_move_the_flag_not_the_score(client, tiny_detector):
    text = "Please summarise the attached meeting notes for me."
    (lib,) = tiny_detector.detect([text])
    score = lib.categories["unsafe"].score
    for threshold, flagged in [(score / 2, True), (1.0, score >= 1.0)]:
        body = {"messages": [{"role": "user", "content": text}], "thresholds": {"unsafe": threshold},
                "return_scores": True}  # fmt: skip
        out = client.post("/v1/detect", json=body).json()
        for cats in (out["categories"], out["messages"][0]["categories"]):
            assert cats["unsafe"] == {"score": round(score, 4), "flagged": flagged, "threshold": threshold}
    served = client.post("/v1/detect", json={"text": text, "return_scores": True}).json()["categories"]["unsafe"]
    assert served["threshold"] == lib.categories["unsafe"].threshold  # the next request is back on the served one


def tiny_detector_redact(text, result):
    out, cursor = [], 0
    for s in result.spans:
        out += [text[cursor : s.start], f"<{s.label}>"]
        cursor = s.end
    return "".join([*out, text[cursor:]])


def test_messages_keep_roles_and_indices(client):
    msgs = [{"role": "user", "content": "Hi, I'm Anna"}, {"role": "assistant", "content": "Hello Anna!"}]
    body = client.post("/v1/detect", json={"messages": msgs, "categories": ["unsafe"]}).json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert all(s["message"] in (0, 1) for s in body["spans"])
    assert set(body["categories"]) == {"unsafe"} and set(body["messages"][0]["categories"]) == {"unsafe"}
    top = max(m["categories"]["unsafe"]["score"] for m in body["messages"])
    assert body["categories"]["unsafe"]["score"] == top


def test_batch_equals_single_requests(client):
    texts = ["Anna Schmidt", "call +44 20 7946 0958", "nothing to see here"]
    batch = client.post("/v1/detect/batch", json={"items": [{"text": t} for t in texts]}).json()["items"]
    for t, item in zip(texts, batch, strict=True):
        single = client.post("/v1/detect", json={"text": t}).json()
        assert item["spans"] == single["spans"] and item["categories"] == single["categories"]


BAD_REQUESTS = [
    ({"text": ""}, 422, "EmptyInputError"),
    ({"text": "   "}, 422, "EmptyInputError"),
    ({"text": 42}, 422, "ValidationException"),
    ({"text": None}, 422, "RequestError"),
    ({}, 422, "RequestError"),
    ({"text": "a", "messages": [{"role": "user", "content": "b"}]}, 422, "RequestError"),
    ({"messages": []}, 422, "RequestError"),
    ({"messages": [{"role": "user", "content": "x"}] * 5}, 413, "TooManyItemsError"),
    ({"text": "x" * 2500}, 413, "InputTooLargeError"),
    ({"text": "ok", "unknown": 1}, 422, "ValidationException"),
    ({"text": "ok", "categories": ["spam"]}, 422, "RequestError"),
    ({"text": "ok", "thresholds": {"spam": 0.5}}, 422, "RequestError"),
    ({"text": "ok", "thresholds": {"unsafe": 0}}, 422, "RequestError"),
    ({"text": "ok", "thresholds": {"unsafe": 1.5}}, 422, "RequestError"),
    ({"text": "ok", "thresholds": {"unsafe": "high"}}, 422, "ValidationException"),
    ({"text": "ok", "redact": "shout"}, 422, "ValidationException"),
    ({"messages": [{"role": "user"}]}, 422, "ValidationException"),
]


@pytest.mark.parametrize(("body", "status", "kind"), BAD_REQUESTS)
def test_bad_requests_get_typed_errors(client, body, status, kind):
    r = client.post("/v1/detect", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error"]["type"] == kind and err["request_id"] == r.headers["x-request-id"]


def test_raw_bodies(client):
    r = client.post("/v1/detect", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("JSON is malformed")
    r = client.post("/v1/detect", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "request body is not valid UTF-8"
    r = client.post(
        "/v1/detect", content=json.dumps({"text": "a" * 30_000}), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = client.post("/v1/detect/batch", json={"items": [{"text": "a"}] * 4})
    assert r.status_code == 413 and r.json()["error"]["type"] == "TooManyItemsError"


def test_no_user_text_in_errors_logs_or_metrics(client, caplog):
    caplog.set_level("DEBUG")
    bodies = [{"text": CANARY, "categories": ["spam"]}, {"text": CANARY, "redact": CANARY},
              {"text": CANARY * 200}, {"messages": [{"role": CANARY, "content": 5}]}, {"text": CANARY}]  # fmt: skip
    for body in bodies:
        r = client.post("/v1/detect", json=body)
        if r.status_code != 200:
            assert CANARY not in r.text
    assert CANARY not in client.get("/metrics").text
    assert CANARY not in caplog.text


def test_metrics_are_exported(client):
    client.post("/v1/detect", json={"text": "Anna Schmidt anna@example.org"})
    text = client.get("/metrics").text
    for name in ("probeguard_request_duration_seconds_bucket", "probeguard_inference_duration_seconds_count",
                 "probeguard_batch_tokens_bucket", "probeguard_queue_depth_tokens", "probeguard_tokens_processed_total",
                 "probeguard_bundle_info", "probeguard_ready", "probeguard_estimated_wait_seconds_bucket",
                 "probeguard_backend_tokens_per_second"):  # fmt: skip
        assert name in text
    assert 'route="/v1/detect",status="200"' in text


def test_dashboard_queries_use_only_exported_metrics(client):
    client.post("/v1/detect", json={"text": "Anna"})
    client.post("/v1/detect", json={"text": ""})
    exported = set(re.findall(r"^(probeguard_[a-z_]+)", client.get("/metrics").text, re.M))
    exported |= Metrics().names()
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "service" / "grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    for expr in exprs:
        for name in re.findall(r"probeguard_[a-z_]+", expr):
            assert name in exported, f"dashboard uses {name}, which the service does not export"


def test_auth_token(tiny_detector):
    with service_client(tiny_detector, auth_token=TOKEN) as c:
        wait_ready(c)
        r = c.post("/v1/detect", json={"text": "hi"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "unauthorized"
        assert c.post("/v1/detect", json={"text": "hi"}, headers={"authorization": "Bearer nope"}).status_code == 401
        ok = c.post("/v1/detect", json={"text": "hi"}, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200


def test_admin_reload(tiny_detector, tmp_path):
    with service_client(tiny_detector) as c:
        wait_ready(c)
        assert c.post("/admin/reload", json={}).status_code == 403, "admin is off without a token"
    with service_client(tiny_detector, auth_token=TOKEN) as c:
        wait_ready(c)
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert c.post("/admin/reload", json={}, headers=auth).json()["status"] == "reloaded"
        for bad in ("../../etc", "/etc/passwd", "a/../../b", "a/b/c", ""):
            r = c.post("/admin/reload", json={"bundle": bad}, headers=auth)
            assert r.status_code == 422, bad
        r = c.post("/admin/reload", json={"bundle": "nope/0.0.0"}, headers=auth)
        assert r.status_code == 409 and "previous bundle keeps serving" in r.json()["error"]["message"]
        assert c.post("/v1/detect", json={"text": "still serving"}, headers=auth).status_code == 200


def test_reload_by_name_from_the_deployments_models_dir(tiny_detector, tmp_path, tiny_hosts):
    """A bundle trained outside the package, under PROBEGUARD_MODELS_DIR, is served by `<name>/<version>`."""
    import dataclasses

    from tests.bundles import make_bundle

    bundle = make_bundle(tmp_path / "ours" / "ours-pii" / "2.0.0", tiny_hosts("gemma3_text"), seed=1)
    settings = dataclasses.replace(tiny_detector.settings, models_dir=tmp_path / "ours")
    det = Detector.load(tiny_detector.bundle.path, settings)
    with service_client(det, auth_token=TOKEN) as c:
        wait_ready(c)
        auth = {"authorization": f"Bearer {TOKEN}"}
        r = c.post("/admin/reload", json={"bundle": "ours-pii/2.0.0"}, headers=auth)
        assert r.status_code == 200 and r.json() == {"status": "reloaded", "bundle": "test-bundle", "version": "0.0.1"}
        assert c.app.state["service"].detector.bundle.path == bundle.path


def test_inference_failure_fails_only_that_batch(tiny_detector, monkeypatch):
    from probeguard.detector.errors import InferenceError

    calls = {"n": 0}
    real = tiny_detector.backend.forward

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 1:
            raise InferenceError("simulated session failure")
        return real(batch)

    with service_client(tiny_detector) as c:
        wait_ready(c)
        monkeypatch.setattr(tiny_detector.backend, "forward", flaky)
        r = c.post("/v1/detect", json={"text": "first"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "InferenceError"
        assert c.post("/v1/detect", json={"text": "second"}).status_code == 200
        assert 'probeguard_errors_total{type="InferenceError"} 1.0' in c.get("/metrics").text


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        ("BundleCorruptError", 503, "heads.safetensors: tensor shape changed"),
        ("HostError", 503, "host weights unreadable"),
        ("ZeroDivisionError", 500, "internal error"),  # nothing the table names: the generic 500, no detail
    ],
)
def test_error_table_rows_for_failures_behind_a_request(tiny_detector, monkeypatch, caplog, error, status, message):
    """A bundle or host failing under a request is 503 with its (text-free) message; anything the table does not
    name falls back to a 500 that says only "internal error", logged without the request's text."""
    import builtins

    from probeguard.detector import errors

    kind = getattr(errors, error, None) or getattr(builtins, error)

    def broken(batch):
        raise kind("heads.safetensors: tensor shape changed" if error == "BundleCorruptError" else
                   "host weights unreadable" if error == "HostError" else "secret detail Anna Schmidt")  # fmt: skip

    with service_client(tiny_detector) as c:
        wait_ready(c)
        monkeypatch.setattr(tiny_detector.backend, "forward", broken)
        r = c.post("/v1/detect", json={"text": "Anna Schmidt, private"})
        assert r.status_code == status and r.json()["error"] == {"type": error, "message": message}
        assert f'probeguard_errors_total{{type="{error}"}} 1.0' in c.get("/metrics").text
    assert "Anna" not in caplog.text and "secret detail" not in r.text


def test_not_ready_answers_503_and_a_probe_is_not_an_error(tiny_detector, caplog):
    """A starting service says so (NotReadyError), a draining one DrainingError; both are states a probe polls, so
    they are logged at info, never as errors."""
    with service_client(tiny_detector) as c:
        wait_ready(c)
        svc = c.app.state["service"]
        svc.ready = False
        with caplog.at_level(logging.INFO, logger="probeguard"):
            r = c.post("/v1/detect", json={"text": "hi"})
            probe = c.get("/readyz")
        assert r.status_code == probe.status_code == 503
        assert r.json()["error"]["type"] == probe.json()["error"]["type"] == "NotReadyError"
        unavailable = [rec for rec in caplog.records if rec.getMessage() == "service unavailable"]
        assert len(unavailable) == 2 and all(rec.levelno == logging.INFO for rec in unavailable)
        assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
        svc.ready = True
        svc.batcher.draining = True
        try:
            assert c.get("/readyz").json()["error"]["type"] == "DrainingError"
        finally:
            svc.batcher.draining = False
