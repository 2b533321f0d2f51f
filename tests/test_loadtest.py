"""The benchmark and load-test helpers: loopback guard, FLOPs formula, report rendering."""

from __future__ import annotations

import pytest
from transformers import Gemma3TextConfig

from probeguard.loadtest.bench import markdown
from probeguard.loadtest.bench_roofline import flops_per_token
from probeguard.loadtest.loadgen import Result, check_loopback, parse_mix
from probeguard.loadtest.soak import share_within


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:9", "http://[::1]:8000", "http://127.8.0.1"]
)
def test_loopback_targets_are_allowed(url):
    check_loopback(url)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://192.168.1.2", "http://8.8.8.8"])
def test_other_targets_are_refused(url):
    with pytest.raises(SystemExit, match="only loopback"):
        check_loopback(url)


def test_mix_and_result_summary():
    assert parse_mix("short:0.7,long:0.3") == [("short", 0.7), ("long", 0.3)]
    r = Result()
    for ms in (10, 20, 30, 40):
        r.add(200, ms / 1000)
    r.add(429, 0.001)
    r.add(None, 0.5)
    s = r.summary(wall=1.0)
    assert s["ok"] == 4 and s["requests"] == 6 and s["rate_429"] == round(1 / 6, 4) and s["p50_ms"] == 30.0
    sized = Result()
    for status, size in ((200, "short"), (200, "short"), (429, "long"), (200, "long"), (429, "long"), (None, "long")):
        sized.add(status, 0.1, "1" if status == 429 else None, size)
    assert sized.summary(wall=1.0)["accepted_share_by_size"] == {"long": round(1 / 3, 4), "short": 1.0}


def test_flops_formula_for_gemma_270m_shape():
    cfg = Gemma3TextConfig(hidden_size=640, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                           intermediate_size=2048, sliding_window=512, num_hidden_layers=18)  # fmt: skip
    d, h, f = 640, 256, 2048
    block = 2 * d * 4 * h + 4 * d * 1 * h + 2 * 4 * h * d + 6 * d * f + 4 * 128 * 4 * h
    assert flops_per_token(cfg, 10, 128, 4 * d * 12 + d * 2) == 10 * block + 2 * 4 * d * 12 + 2 * d * 2


def test_markdown_renders_partial_reports():
    text = markdown({"date": "2026-11-22", "subset": True, "machine": "x86_64", "ratios": {}})
    assert text.startswith("# Benchmarks") and "2026-11-22" in text


def test_variant_verdict_reports_the_worst_loss_against_the_reference():
    from probeguard.loadtest.variants import verdict

    def report(tps, f1, recall, fpr):
        return {"tokens_per_s": tps, "f1": {"wikigold": f1, "pii_free": None},
                "categories": {"unsafe/q": {"role": "positive", "value": recall, "n": 100},
                               "unsafe/h": {"role": "positive", "value": recall, "n": 5},
                               "unsafe/tech": {"role": "lookalike", "value": fpr, "n": 50}}}  # fmt: skip

    ref = report(100.0, 0.80, 0.90, 0.10)
    assert verdict(ref, report(250.0, 0.795, 0.895, 0.105)) == {
        "f1_drop": 0.005, "recall_drop": 0.005, "fpr_rise": 0.005, "mean_f1_drop": 0.005, "pooled_recall_drop": 0.005,
        "pooled_fpr_rise": 0.005, "speedup": 2.5, "within_bounds": True, "pooled_within_bounds": True}  # fmt: skip
    small = report(250.0, 0.80, 0.90, 0.10)
    small["categories"]["unsafe/h"]["value"] = 0.70  # one text of five: outside per source, not pooled (10/105)
    assert verdict(ref, small)["recall_drop"] == 0.2 and verdict(ref, small)["pooled_within_bounds"]
    assert not verdict(ref, report(250.0, 0.78, 0.90, 0.10))["within_bounds"]  # F1 lost 0.02
    assert not verdict(ref, report(250.0, 0.80, 0.90, 0.13))["within_bounds"]  # a look-alike FPR rose 0.03
    assert verdict(ref, report(250.0, 0.85, 0.95, 0.05))["within_bounds"]  # better everywhere


def test_paired_intervals_tell_a_real_loss_from_a_too_small_dev_part():
    import numpy as np

    from probeguard.loadtest.variants import paired_intervals, paired_verdict

    same = np.tile([1, 1, 1], (400, 1))  # [texts, (matched, predicted, gold)]: every entity found
    lost = same.copy()
    lost[:80, 0] = 0  # a fifth of the texts lose their entity: F1 0.8
    flags = np.r_[np.ones(90, bool), np.zeros(10, bool)]  # recall 0.9 on 100 texts
    few = np.r_[np.ones(4, bool), np.zeros(1, bool)]

    def report(pii, recall, small):
        return {"categories": {"unsafe/q": {"role": "positive"}, "unsafe/h": {"role": "positive"},
                               "unsafe/tech": {"role": "lookalike"}},
                "outcomes": {"wikigold": pii, "pii_free": np.zeros((50, 3), np.int64), "unsafe/q": recall,
                             "unsafe/h": small, "unsafe/tech": ~flags}}  # fmt: skip

    ref = report(same, flags, few)
    fewer = few.copy()
    fewer[0] = False
    intervals = paired_intervals(ref, report(lost, flags, fewer))
    assert intervals["unsafe/q"] == [0.0, 0.0] and "pii_free" not in intervals  # no gold: no F1
    assert intervals["wikigold"][1] < -0.01  # surely worse
    verdict = paired_verdict(ref, intervals)
    assert verdict == {"within": ["unsafe/q", "unsafe/tech"], "worse": ["wikigold"], "unresolved": ["unsafe/h"]}


def test_server_share_counts_only_the_observations_between_two_scrapes():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from probeguard.service.metrics import LATENCY_BUCKETS

    registry = CollectorRegistry()
    h = Histogram("probeguard_request_duration_seconds", "x", ["route", "status"], buckets=LATENCY_BUCKETS,
                  registry=registry)  # fmt: skip
    series = h.labels(route="/v1/detect", status="200")
    for s in (0.2, 3.0):  # before the load: not counted
        series.observe(s)
    h.labels(route="/v1/detect", status="429").observe(5.0)  # another series: not counted
    before = generate_latest(registry).decode()
    for s in (0.1, 0.4, 0.9, 1.0, 1.7):
        series.observe(s)
    after = generate_latest(registry).decode()
    labels = {"route": "/v1/detect", "status": "200"}
    name = "probeguard_request_duration_seconds"
    assert share_within(before, after, name, labels, 1.0) == {"observations": 5.0, "share_le_1s": 0.8}
    assert share_within(before, after, name, labels, 0.5) == {"observations": 5.0, "share_le_0.5s": 0.4}
    assert share_within(after, after, name, labels, 1.0) == {"observations": 0.0, "share_le_1s": 1.0}
    with pytest.raises(ValueError, match=r"no bucket le=0\.75"):
        share_within(before, after, name, labels, 0.75)


def test_refusal_deltas_come_from_the_service_s_own_counter():
    from prometheus_client import generate_latest

    from probeguard.loadtest.soak import counter_deltas
    from probeguard.service.metrics import Metrics

    metrics = Metrics()
    metrics.refusals.labels(reason="admitted_deadline").inc(3)  # before the load: not counted
    before = generate_latest(metrics.registry).decode()
    metrics.refusals.labels(reason="admitted_deadline").inc(2)
    metrics.refusals.labels(reason="answer_deadline").inc(7)
    after = generate_latest(metrics.registry).decode()
    deltas = counter_deltas(before, after, "probeguard_refusals", "reason")
    assert deltas == {"admitted_deadline": 2.0, "answer_deadline": 7.0, "queue_tokens": 0.0}


def _soak_result(first: dict[str, float], p99: dict[str, float], statuses: dict[str, int]) -> dict:
    sizes = sorted(first)
    load = {"admitted_first_try_by_size": first, "admitted_with_retries_by_size": first, "p99_ms_by_size": p99,
            "p50_ms_by_size": p99, "requests_by_size": dict.fromkeys(sizes, 10), "over_bound_by_size": {},
            "statuses": statuses, "unanswered": 0, "retry_after_s": {"1": 3}, "wall_s": 120.0}  # fmt: skip
    return {"date": "2026-12-08", "machine": "x86_64, 2 cores", "times_capacity": 5.0, "offered_rps": 6.0,
            "capacity": {"throughput_rps": 1.2}, "load": load, "server": {"refusals": {"answer_deadline": 3.0}},
            "load_generator": {"cores_used": 0.01}, "after": 200,
            "rss_mb": {"before": 1800.0, "max": 1850.0, "after_10s_idle": 1810.0,
                       "after_vs_before": 0.006}}  # fmt: skip


def test_soak_checks_hold_the_issue_s_bounds_and_the_report_shows_them(tmp_path):
    """At 5x, half a fair share is 0.1 of each size's requests; short and medium p99 within 1 s; no 5xx."""
    import json

    from probeguard.loadtest.soak import checks
    from probeguard.loadtest.soak_report import soak_section

    fair = {"short": 0.3, "medium": 0.2, "long": 0.12, "document": 0.1}
    good = _soak_result(fair, {"short": 600.0, "medium": 900.0}, {"200": 90, "429": 10})
    assert all(checks(good, 5.0).values())
    starved = _soak_result({**fair, "long": 0.05}, {"short": 600.0}, {"200": 90, "429": 10})
    assert checks(starved, 5.0)["every_size_admitted_at_least_half_a_fair_share"] is False
    assert checks(starved, None)["every_size_admitted_at_least_half_a_fair_share"] is None  # not at a multiple
    slow = _soak_result(fair, {"short": 600.0, "medium": 1200.0}, {"200": 90, "503": 1})
    verdict = checks(slow, 5.0)
    assert not verdict["short_and_medium_p99_within_1s"] and not verdict["no_5xx"]
    good["checks"], slow["checks"] = checks(good, 5.0), verdict
    (tmp_path / "soak_5x.json").write_text(json.dumps(good))
    (tmp_path / "soak_2x.json").write_text(json.dumps({**slow, "times_capacity": 2.0}))
    text = "\n".join(soak_section(tmp_path))
    assert text.index("| 2 | short |") < text.index("| 5 | short |"), "soaks in order of load"
    assert "| 5 | long | 10 | 0.12 (0.12) |" in text and "checks all hold" in text
    assert "FAILED: short_and_medium_p99_within_1s, no_5xx" in text
    assert soak_section(tmp_path / "none") == []
