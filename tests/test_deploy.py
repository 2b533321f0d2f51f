"""The Kubernetes manifests validate offline against the API schemas (kubernetes-validate, strict) and agree with the
code they deploy: probe routes, settings names, metric names, drain time and the prepared cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from probeguard.detector.typed_config import env_name
from probeguard.service.metrics import Metrics
from probeguard.service.settings import ServiceSettings
from probeguard.settings_doc import SETTINGS_CLASSES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"  # the oldest release these manifests promise to work on (autoscaling/v2, policy/v1)


def _manifests() -> dict[str, dict]:
    return {
        p.name: yaml.safe_load(p.read_text()) for p in sorted(DEPLOY.glob("*.yaml")) if p.name != "kustomization.yaml"
    }


def _container() -> dict:
    (container,) = _manifests()["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("name", sorted(_manifests()))
def test_manifest_validates_strictly_against_the_kubernetes_schema(name):
    kubernetes_validate.validate(_manifests()[name], K8S_VERSION, strict=True)


def test_a_wrong_field_fails_validation():
    broken = _manifests()["deployment.yaml"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(_manifests())


def test_probes_ports_and_env_match_the_service():
    c = _container()
    assert c["readinessProbe"]["httpGet"]["path"] == c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["ports"][0]["containerPort"] == ServiceSettings().port
    known = {env_name(f) for cls in SETTINGS_CLASSES for f in dataclasses.fields(cls)}
    assert {e["name"] for e in c["env"]} <= known, "every variable the Deployment sets is a real setting"
    env = {e["name"]: e.get("value") for e in c["env"]}
    grace = _manifests()["deployment.yaml"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(env["PROBEGUARD_DRAIN_SECONDS"]), "Kubernetes must not kill a pod that is still draining"
    assert c["securityContext"]["readOnlyRootFilesystem"] and env["PROBEGUARD_CACHE"] == "/opt/probeguard/cache"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "probeguard prepare --cache-dir /opt/probeguard/cache" in dockerfile, "the image prepares that cache"


def test_hpa_metric_is_served_by_the_adapter_rule_from_real_metrics():
    hpa = _manifests()["hpa.yaml"]
    (metric,) = hpa["spec"]["metrics"]
    rules = yaml.safe_load(_manifests()["prometheus-adapter-rules.yaml"]["data"]["config.yaml"])["rules"]
    assert [r["name"]["as"] for r in rules] == [metric["pods"]["metric"]["name"]]
    exposed = {m.name for family in Metrics().registry.collect() for m in family.samples}
    query = rules[0]["metricsQuery"] + rules[0]["seriesQuery"]
    for series in ("probeguard_tokens_processed_total", "probeguard_backend_tokens_per_second"):
        assert series in query and series in exposed, series
    assert hpa["spec"]["minReplicas"] >= 2 and _manifests()["pdb.yaml"]["spec"]["maxUnavailable"] == 1


def test_the_gpu_runtime_swap_is_the_same_in_the_readme_and_the_image():
    """onnxruntime-gpu replaces onnxruntime (same module); the README documents the swap the image performs, pinned to
    one version, on the CUDA 12 + cuDNN 9 runtime that version is built for."""
    import re

    readme, dockerfile = (ROOT / "README.md").read_text(), (ROOT / "Dockerfile").read_text()
    pins = {doc: set(re.findall(r"onnxruntime-gpu==([\d.]+)", text)) for doc, text in
            (("README", readme), ("Dockerfile", dockerfile))}  # fmt: skip
    assert pins["README"] == pins["Dockerfile"] and len(pins["README"]) == 1, pins
    flat = " ".join(readme.split())
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu==" in flat
    assert "pip uninstall -y onnxruntime" in dockerfile
    assert re.search(r"FROM nvidia/cuda:12\.\d+\.\d+-cudnn-runtime", dockerfile)
    assert "CUDA 12.x with cuDNN 9" in flat
    install_lines = [line for line in dockerfile.splitlines() if "pip install ." in line]
    assert install_lines and all("[" not in line for line in install_lines), "the image installs no extras"
