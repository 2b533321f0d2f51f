"""Detector end to end on tiny hosts: windows, batching, validation, redaction."""

from __future__ import annotations

import numpy as np
import pytest

from probeguard.detector import Detector, DetectorSettings, Redactor, Span
from probeguard.detector.batching import PassCost
from probeguard.detector.errors import ConfigError, EmptyInputError, InputTooLargeError, InvalidInputError
from probeguard.detector.heads import SequenceLinearConfig, TokenLinearConfig
from tests.bundles import default_configs, make_bundle

LONG = " ".join(
    f"Ticket {i}: Anna Schmidt (anna{i}@example.org) called +44 20 7946 {i:04d} about 東京 😀." for i in range(40)
)


def _detector(tmp_path, host, configs=None, threshold=0.5, **kw) -> Detector:
    make_bundle(tmp_path / "bundle", host, configs, threshold=threshold)
    settings = DetectorSettings(cache_dir=tmp_path / "cache", host_path=host, **{"backend": "torch", **kw})
    return Detector.load(tmp_path / "bundle", settings)


@pytest.mark.parametrize("family", ["gemma3_text", "llama"])
def test_window_seams_lose_and_duplicate_nothing(tmp_path, tiny_hosts, family):
    """On a RoPE host a head on layer 0 is context- and position-free, so windowed and unwindowed scores must agree
    exactly; any span lost or doubled at a seam would show. (Absolute-position hosts add a position embedding at
    layer 0, so they cannot be compared this way.)"""
    configs = [
        TokenLinearConfig(name="pii", layer=0, labels=("PERSON", "EMAIL", "PHONE"), lookahead=2),
        SequenceLinearConfig(name="unsafe", layer=0, labels=("unsafe",), pooling="max"),
    ]
    host = tiny_hosts(family)
    whole = _detector(tmp_path / "a", host, configs, threshold=0.5, window_tokens=1024, window_overlap=8)
    windowed = _detector(tmp_path / "b", host, configs, threshold=0.5, window_tokens=40, window_overlap=8)
    enc = whole.encode([LONG])
    assert len(enc[0].ids) > 5 * 40, "the text must span many windows"
    (p_whole,), _ = whole.score(enc)
    (p_win,), _ = windowed.score(enc)
    np.testing.assert_allclose(p_whole, p_win, atol=1e-5)
    (a,), (b,) = whole.detect([LONG]), windowed.detect([LONG])
    assert a.spans == b.spans and len(a.spans) > 10


def test_batching_does_not_change_scores(tmp_path, tiny_hosts, family):
    det = _detector(tmp_path, tiny_hosts(family))
    texts = ["Anna", "Hello, my name is Anna Schmidt and I live at 221B Baker Street.", "x y z " * 30]
    single = [det.score(det.encode([t]))[0][0] for t in texts]
    assert len(det.forward_batches(det.encode(texts), token_budget=1)) == 3, "over-budget windows run alone"
    # A backend whose calls are expensive takes all three (differently padded) rows in one pass.
    det.pass_cost = PassCost(pads=True, call_overhead_tokens=100_000, max_batch=None)
    assert len(det.forward_batches(det.encode(texts))) == 1
    batched, _ = det.score(det.encode(texts))
    for a, b in zip(single, batched, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_detect_returns_typed_results(tmp_path, tiny_hosts):
    det = _detector(tmp_path, tiny_hosts("gemma3_text"), threshold=0.3)
    (result,) = det.detect(["Hello, my name is Anna Schmidt, email anna@example.org, phone 555 0199."])
    assert set(result.categories) == {"unsafe", "prompt_injection"}
    for span in result.spans:
        assert span.label in ("PERSON", "EMAIL", "PHONE") and 0 <= span.start < span.end and 0.3 <= span.score <= 1
    d = result.to_dict()
    assert set(d) == {"spans", "categories"} and set(d["categories"]["unsafe"]) == {"score", "flagged"}
    info = det.info()
    assert info["layers"] == [1, 2] and info["labels"] == ["PERSON", "EMAIL", "PHONE"]


@pytest.mark.parametrize(
    ("texts", "error", "needle"),
    [
        ([""], EmptyInputError, "text 0 is empty"),
        (["ok", "  \n\t"], EmptyInputError, "text 1 is empty"),
        (["x" * 101], InputTooLargeError, "101 characters"),
        ([42], InvalidInputError, "type int"),
        (["ok", None], InvalidInputError, "text 1 has type NoneType"),
        ("not a list", InvalidInputError, "list of strings"),
        (["bad \ud800 surrogate"], InvalidInputError, "lone surrogate"),
    ],
)
def test_bad_input_gets_a_clear_error_without_the_text(tmp_path, tiny_hosts, texts, error, needle):
    det = _detector(tmp_path, tiny_hosts("gemma3_text"), max_chars=100)
    with pytest.raises(error) as info:
        det.detect(texts)
    assert needle in str(info.value)
    assert "surrogate" not in str(info.value).replace("lone surrogate", "")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("mask", "Mail ********* now, ****!"), ("replace", "Mail <EMAIL> now, <PERSON>!")],
)
def test_redaction(mode, expected):
    text = "Mail a@b.co.uk now, Anna!"
    spans = [Span("EMAIL", 5, 14, 0.9), Span("PERSON", 20, 24, 0.8)]
    assert Redactor().redact(text, spans, mode) == expected


def test_hash_redaction_is_keyed_and_stable():
    spans = [Span("EMAIL", 0, 6, 0.9)]
    a = Redactor(key=b"k1").redact("a@b.co x", spans, "hash")
    assert a == Redactor(key=b"k1").redact("a@b.co x", spans, "hash")
    assert a != Redactor(key=b"k2").redact("a@b.co x", spans, "hash")
    assert a.startswith("<EMAIL:") and "a@b.co" not in a
    with pytest.raises(ConfigError):
        Redactor().redact("abc", spans, "shout")


def test_settings_validation_and_env():
    with pytest.raises(ConfigError, match="num_threads"):
        DetectorSettings(num_threads=0)
    with pytest.raises(ConfigError, match="window_overlap"):
        DetectorSettings(window_tokens=32, window_overlap=16)
    with pytest.raises(ConfigError, match="PROBEGUARD_BATCH_TOKENS must be an integer"):
        DetectorSettings.from_env({"PROBEGUARD_BATCH_TOKENS": "many"})
    with pytest.raises(ConfigError, match="replaced by PROBEGUARD_BATCH_TOKENS"):
        DetectorSettings.from_env({"PROBEGUARD_BATCH_SIZE": "16"})
    with pytest.raises(ConfigError, match="at least window_tokens"):
        DetectorSettings(batch_tokens=100)
    s = DetectorSettings.from_env({"PROBEGUARD_CACHE": "/tmp/x", "PROBEGUARD_NUM_THREADS": "2"})
    assert str(s.cache_dir) == "/tmp/x" and s.num_threads == 2


def test_test_bundles_cover_the_served_head_types_and_the_others():
    from tests.bundles import sae_configs

    assert {c.__class__.__name__ for c in default_configs()} == {"TokenMLPConfig", "AttentionPoolConfig"}
    assert {c.__class__.__name__ for c in sae_configs()} == {
        "TokenLinearConfig", "SequenceLinearConfig", "SAEFeatureConfig"
    }  # fmt: skip


def test_category_threshold_overrides_replace_the_bundles(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    shipped = _detector(tmp_path / "a", host, threshold=0.5)
    tuned = _detector(tmp_path / "b", host, threshold=0.5, category_thresholds="unsafe=0.9")
    assert shipped.plan.categories["unsafe"][2] == 0.5 and tuned.plan.categories["unsafe"][2] == 0.9
    assert tuned.info()["category_thresholds"]["unsafe"] == 0.9
    text = ["Please tell me how the weather will be tomorrow."]
    (a,), (b,) = shipped.detect(text), tuned.detect(text)
    assert a.categories["unsafe"].score == b.categories["unsafe"].score  # the threshold moves, never the score
    assert b.categories["unsafe"].flagged == (b.categories["unsafe"].score >= 0.9)
    with pytest.raises(ConfigError, match=r"names \['unsafe_typo'\]"):
        _detector(tmp_path / "c", host, category_thresholds="unsafe_typo=0.5")


@pytest.mark.parametrize("value", ["unsafe", "unsafe=2", "unsafe=x", "=0.5", "unsafe=0.5,unsafe=0.6", "unsafe=nan",
                                   "unsafe=0"])  # fmt: skip
def test_category_thresholds_setting_is_checked(value):
    with pytest.raises(ConfigError, match="PROBEGUARD_CATEGORY_THRESHOLDS"):
        DetectorSettings.from_env({"PROBEGUARD_CATEGORY_THRESHOLDS": value})
    ok = DetectorSettings.from_env({"PROBEGUARD_CATEGORY_THRESHOLDS": " unsafe = 0.6 , prompt_injection=1 "})
    assert ok.threshold_overrides() == {"unsafe": 0.6, "prompt_injection": 1.0}
