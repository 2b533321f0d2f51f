"""Exact decomposition of an attention-pooled head's logit: the parts (per token; per SAE feature, offset and error)
sum to the logit the head's own forward pass computes, on random heads and SAEs and on the shipped bundle's heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.explain import attention_logit_parts
from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead, build_head
from tests.bundles import random_sae

D_MODEL, SEQ, BATCH = 32, 11, 3
REL = 1e-6  # float64 sums against the head's float32 forward pass: relative to the logit's size


def _head(labels: tuple[str, ...] = ("unsafe",), heads: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    head = build_head(AttentionPoolConfig(name="h", layer=1, labels=labels, heads=heads), D_MODEL)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, 0.5)
        head.set_standardisation(torch.randn(D_MODEL), torch.rand(D_MODEL) + 0.5)
    return head


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(BATCH, SEQ, D_MODEL, generator=gen) * 3  # [batch, seq, d_model]
    content = torch.zeros(BATCH, SEQ, dtype=torch.bool)
    content[0, 1:-1] = True  # BOS and EOS around the text
    content[1, 1:5] = True  # a short text, then padding
    content[2, 1:2] = True  # one token
    return acts, content


def _served(head, acts, content) -> torch.Tensor:
    batch = Activations(layers={1: acts}, attention_mask=content, content_mask=content)
    with torch.no_grad():
        return head(batch)  # [batch, labels]


@pytest.mark.parametrize("label", [0, 1])
def test_token_parts_sum_to_the_served_logit(label):
    head = _head(labels=("unsafe", "prompt_injection"))
    acts, content = _batch()
    served = _served(head, acts, content)
    for row in range(BATCH):
        parts = attention_logit_parts(head, acts[row], content[row], label)
        want = float(served[row, label])
        assert parts.logit == pytest.approx(want, rel=REL, abs=1e-6)
        assert parts.total() == pytest.approx(parts.logit, rel=1e-12, abs=1e-12)
        assert np.all(parts.tokens[~content[row].numpy()] == 0), "special tokens and padding carry nothing"
        np.testing.assert_allclose(parts.attention[content[row].numpy()].sum(0), 1.0, rtol=1e-9)


def test_feature_parts_offset_and_error_sum_to_the_logit():
    head = _head()
    sae = random_sae(D_MODEL, layer=1, d_sae=64)
    with torch.no_grad():
        sae.W_dec.normal_(0.0, 0.3)
    acts, content = _batch(seed=2)
    served = _served(head, acts, content)
    for row in range(BATCH):
        parts = attention_logit_parts(head, acts[row], content[row], sae=sae)
        f = parts.features
        assert f is not None and f.contributions.shape == (64,) and f.token_contributions.shape == (SEQ, 64)
        assert parts.feature_total() == pytest.approx(float(served[row, 0]), rel=REL, abs=1e-6)
        # each token's term splits into its features, the offset and the error; the features' sum is per token too
        np.testing.assert_allclose(f.token_contributions.sum(0), f.contributions, rtol=1e-12, atol=1e-12)
        codes = sae.encode(acts[row]).detach().numpy()
        assert np.all(f.token_contributions[codes == 0] == 0), "a feature that did not fire contributes nothing"


def test_a_text_with_no_tokens_is_its_bias_alone():
    head = _head()
    acts, _ = _batch()
    parts = attention_logit_parts(head, acts[0], torch.zeros(SEQ, dtype=torch.bool))
    assert parts.logit == pytest.approx(float(head.bias[0].detach())) and not parts.tokens.any()


def test_mismatched_sae_or_label_is_refused():
    head = _head()
    acts, content = _batch()
    with pytest.raises(ConfigError, match="reads layer 2"):
        attention_logit_parts(head, acts[0], content[0], sae=random_sae(D_MODEL, layer=2))
    with pytest.raises(ConfigError, match="not label 3"):
        attention_logit_parts(head, acts[0], content[0], label=3)


@pytest.mark.integration
def test_the_shipped_heads_scores_on_real_texts_are_the_sum_of_their_parts():
    """probeguard-base's attention heads on real texts, activations from the truncated host: the parts reproduce the
    head's logit, and its sigmoid is the score the served ONNX graph answered."""
    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.paths import default_bundle_path
    from tests.golden import corpus

    texts = dict(corpus())
    chosen = [texts[k] for k in ("unsafe-plain", "injection-email", "twin-benign", "readme-anna")]
    served = Detector.load(default_bundle_path(), DetectorSettings.from_env(num_threads=1, backend="onnx"))
    local = Detector.load(default_bundle_path(), DetectorSettings.from_env(num_threads=1, backend="torch"))
    model = local.backend.model  # type: ignore[attr-defined]
    heads = {h.config.labels[0]: h for h in model.heads if isinstance(h, AttentionPoolHead)}
    assert set(heads) == {"unsafe", "prompt_injection"}
    for text, answer in zip(chosen, served.detect(chosen), strict=True):
        enc = local.tokenizer.encode(text)
        ids = torch.tensor([[*local.tokenizer.prefix_ids, *enc.ids, *local.tokenizer.suffix_ids]])
        acts = model.activations(ids, torch.ones_like(ids))
        for category, head in heads.items():
            parts = attention_logit_parts(head, acts.layer(head.config.layer)[0], acts.content_mask[0])
            with torch.no_grad():
                logit = float(head(acts)[0, 0])
            assert parts.total() == pytest.approx(logit, rel=1e-5, abs=1e-5)
            score = 1.0 / (1.0 + np.exp(-parts.logit))
            assert score == pytest.approx(answer.categories[category].score, abs=1e-3), (category, text[:30])


def test_faithfulness_figures_of_one_text():
    """One text's figures: the decomposition is exact, the error share a share, the summary's ratio the drops' ratio,
    and a text with too few fired features for a random control is left out."""
    from probeguard.training.explain_quality import summarise, text_faithfulness

    head = _head()
    sae = random_sae(D_MODEL, layer=1, d_sae=64)
    with torch.no_grad():
        sae.W_dec.normal_(0.0, 0.3)
    acts, content = _batch(seed=3)
    row = text_faithfulness(head, sae, acts[0], content[0], np.random.default_rng(0))
    assert row is not None and row.residual < 1e-5 and 0.0 <= row.error_share <= 1.0
    summary = summarise([row, row])
    assert summary["texts"] == 2 and summary["deletion_ratio"] == pytest.approx(
        row.top_drop / row.random_drop, rel=1e-2
    )
    few = torch.zeros(SEQ, dtype=torch.bool)
    few[1] = True  # one token: at most k features fired, too few for a random control
    assert text_faithfulness(head, sae, acts[0], few, np.random.default_rng(0)) is None


@pytest.mark.integration
def test_the_default_bundle_explains_unsafe_injection_and_pii_through_the_api():
    """The shipped bundle over HTTP with explain: a flagged unsafe message, an injection inside an e-mail and inside
    a long thread (its winning window), and PII spans; every category's parts sum to the logit whose sigmoid was
    served, the cited features carry labels, the training rows behind it are listed (Alpaca ones without text)."""
    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.paths import default_bundle_path
    from tests.golden import corpus
    from tests.service_client import service_client, wait_ready

    texts = dict(corpus())
    det = Detector.load(default_bundle_path(), DetectorSettings.from_env(num_threads=1, backend="onnx"))
    cases = [("unsafe-plain", "unsafe"), ("injection-email", "prompt_injection"),
             ("long-thread-with-injection", "prompt_injection"), ("readme-anna", None)]  # fmt: skip
    with service_client(det) as client:
        wait_ready(client)
        for key, category in cases:
            plain = client.post("/v1/detect", json={"text": texts[key]}).json()
            body = client.post("/v1/detect", json={"text": texts[key], "explain": True}).json()
            assert [s["label"] for s in body["spans"]] == [s["label"] for s in plain["spans"]]
            assert {k: v["score"] for k, v in body["categories"].items()} == {
                k: v["score"] for k, v in plain["categories"].items()}  # fmt: skip
            if category is not None:
                c = body["categories"][category]
                assert c["flagged"], (key, c["score"])
                e = c["explanation"]
                parts = e["bias"] + sum(f["contribution"] for f in e["features"]) + e["other_features"]
                assert parts + e["sae_offset"] + e["sae_error"] == pytest.approx(e["logit"], rel=1e-6, abs=1e-6)
                assert 1 / (1 + np.exp(-e["logit"])) == pytest.approx(c["score"], abs=2e-4)
                assert e["features"] and all(f["label"] for f in e["features"]) and e["supporting_rows"]
                assert all(r["snippet"] is None for r in e["supporting_rows"] + e["nearest_rows"]
                           if r["source"] == "alpaca")  # fmt: skip
                start, end = e["window"]
                assert 0 <= start < end <= len(texts[key])
            else:
                spans = body["spans"]
                assert {"PERSON", "EMAIL"} <= {s["label"] for s in spans}
                email = next(s for s in spans if s["label"] == "EMAIL")["explanation"]
                assert "email-validator" in email["validator"] and email["features"]
