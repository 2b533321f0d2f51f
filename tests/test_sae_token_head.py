"""A PII token head on SAE codes (SAEFeatureHead, level "token", with lookahead): the served math is the linear
lookahead head's on codes, the ONNX graph serves it as torch does, an explanation of its spans is written in the SAE's
features, and the PII selection fits it on the same folds as every other candidate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.heads import SAEFeatureConfig, SAEFeatureHead, TokenLinearConfig, TokenLinearHead
from probeguard.detector.truncate import load_host_config
from tests.bundles import TOKEN_LABELS, default_configs, make_bundle, random_sae

TEXTS = [
    "Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org.",
    "東京都 😀 call +44 20 7946 0958 " * 6,
]


def _sae_pii(lookahead: int, layer: int = 1) -> SAEFeatureConfig:
    return SAEFeatureConfig(name="pii", layer=layer, labels=TOKEN_LABELS, sae="tiny_sae", d_sae=16, level="token",
                            lookahead=lookahead)  # fmt: skip


@pytest.mark.parametrize("lookahead", [0, 1, 3])
def test_a_token_head_on_codes_is_the_linear_lookahead_head_on_codes(lookahead):
    """Logits at token i read codes i..i+w; codes past the text (padding) read as zeros; = TokenLinearHead on codes."""
    torch.manual_seed(0)
    codes = torch.relu(torch.randn(2, 7, 16))  # [batch, seq, d_sae]
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    head = SAEFeatureHead(_sae_pii(lookahead), d_model=8)
    torch.nn.init.normal_(head.weight)
    torch.nn.init.normal_(head.bias)
    got = head(Activations({1: torch.zeros(2, 7, 8)}, mask, mask, {"tiny_sae": codes}))  # [batch, seq, labels]
    reference = TokenLinearHead(TokenLinearConfig(name="ref", layer=1, labels=TOKEN_LABELS, lookahead=lookahead), 16)
    with torch.no_grad():
        reference.weight.copy_(head.weight.reshape(reference.weight.shape))
        reference.bias.copy_(head.bias)
        want = reference(Activations({1: codes}, mask, mask))
    if lookahead == 0:  # the lookahead-free head scores every position, as before: compare text tokens
        got, want = got[mask], want[mask]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [{"lookahead": -1}, {"lookahead": True}, {"lookahead": 2, "level": "sequence"}])
def test_lookahead_is_checked(bad):
    with pytest.raises(ConfigError, match="lookahead"):
        SAEFeatureConfig(**{**_sae_pii(0).__dict__, **bad})


@pytest.mark.slow
def test_a_bundle_whose_pii_head_reads_codes_serves_the_same_on_onnx_and_explains_spans(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    configs = [_sae_pii(2), *default_configs()[1:]]
    make_bundle(tmp_path / "bundle", host, configs, threshold=0.3, saes=[random_sae(_d(host))])
    base = {"cache_dir": tmp_path / "cache", "host_path": host, "window_tokens": 64, "window_overlap": 8}
    torch_det = Detector.load(tmp_path / "bundle", DetectorSettings(**base, backend="torch"))
    onnx_det = Detector.load(tmp_path / "bundle", DetectorSettings(**base, backend="onnx"))
    probs_t, _ = torch_det.score(torch_det.encode(TEXTS))
    probs_o, _ = onnx_det.score(onnx_det.encode(TEXTS))
    for a, b in zip(probs_t, probs_o, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    (d,) = torch_det.detect([TEXTS[0]], explain=True)
    assert d.spans, "thresholds low enough that random heads find spans"
    assert d.explanation is not None and len(d.explanation.spans) == len(d.spans)
    assert all(e.features for e in d.explanation.spans), "each span is written in the SAE's features"


def _d(host) -> int:
    return int(load_host_config(host).hidden_size)


def test_pii_selection_fits_the_sae_candidate_on_the_same_folds(tmp_path, tiny_hosts):
    """The sae candidate exists only on the SAE's layer, is left-one-source-out like the others, and fits a served
    SAEFeatureHead; without an SAE no candidate can read codes."""
    from probeguard.training.pii_harvest import harvester
    from probeguard.training.pii_select import PiiCandidate, fit_head, harvest_sources, select
    from probeguard.training.pii_sources import SpanSource, business_source, pii_free_source, synthetic_source

    host = tiny_hosts("llama")
    settings = DetectorSettings(cache_dir=tmp_path / "cache", host_path=host, backend="torch")
    sources = [business_source(30, 5, seed=0), synthetic_source(30, 5, seed=0), pii_free_source(5, seed=0)]
    sources = [SpanSource(s.name, s.kind, s.labels, s.train[:30], s.dev) for s in sources]
    data = harvest_sources(sources, harvester([1, 2], settings))
    sae = random_sae(_d(host), layer=1)
    _, summary = select(data, [1, 2], [1], epochs=1, seed=0, max_structured=5.0, kinds=["linear", "sae"], sae=sae)
    assert set(summary["candidates"]) == {"L1/w1", "L2/w1", "L1/w1/sae"}
    assert set(summary["candidates"]["L1/w1/sae"]["by_source"]) == {"business", "synthetic", "pii_free"}
    head, thresholds = fit_head(list(data.values()), PiiCandidate(1, 1, "sae"), epochs=1, seed=0, sae=sae)
    assert isinstance(head, SAEFeatureHead) and head.config.sae == sae.config.name and head.config.lookahead == 1
    assert head.weight.abs().sum() > 0 and thresholds.shape == (len(head.config.labels),)
    with pytest.raises(ConfigError, match="no PII candidate"):
        select(data, [1], [1], epochs=1, seed=0, max_structured=5.0, kinds=["sae"])
    with pytest.raises(ConfigError, match="reads SAE codes at layer 2"):
        fit_head(list(data.values()), PiiCandidate(2, 1, "sae"), epochs=1, seed=0, sae=sae)
