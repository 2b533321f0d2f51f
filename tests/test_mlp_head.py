"""The small non-linear token head (`token_mlp`): config checks, bundle round trip of its standardisation, and the
ONNX graph scoring it like the torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.bundle import load_bundle, save_bundle
from probeguard.detector.errors import BundleCorruptError, ConfigError
from probeguard.detector.heads import SequenceLinearConfig, TokenMLPConfig, TokenMLPHead, build_head
from tests.bundles import TOKEN_LABELS, host_ref, random_heads
from tests.test_bundle import _resave_tensors

TEXTS = ["Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org.", "東京都 😀 " * 20, "ok"]


def _bundle(tmp_path, host, hidden: int = 8):
    ref = host_ref(host)
    config = TokenMLPConfig(name="pii", layer=2, labels=TOKEN_LABELS, lookahead=2, hidden=hidden)
    mlp = TokenMLPHead(config, ref.d_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in mlp.parameters():
            p.normal_(0.0, 0.5)
    mlp.set_standardisation(torch.randn(ref.d_model), torch.rand(ref.d_model) + 0.5)
    (unsafe,) = random_heads([SequenceLinearConfig(name="unsafe", layer=1, labels=("unsafe",))], ref.d_model)
    heads = [(mlp, dict.fromkeys(TOKEN_LABELS, 0.4)), (unsafe, {"unsafe": 0.5})]
    save_bundle(tmp_path / "b", name="t", version="1", host=ref, heads=heads)
    return mlp


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"hidden": 0}, "hidden"),
        ({"hidden": True}, "hidden"),
        ({"hidden": 2048}, "hidden"),
        ({"lookahead": -1}, "lookahead"),
    ],
)
def test_bad_config_is_refused(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        TokenMLPConfig(name="pii", layer=1, labels=("PERSON",), **kw)


def test_standardisation_survives_the_bundle_round_trip(tmp_path, tiny_hosts):
    host = tiny_hosts("gemma3_text")
    mlp = _bundle(tmp_path, host)
    loaded = next(h for h in load_bundle(tmp_path / "b").build_heads() if isinstance(h, TokenMLPHead))
    assert loaded.config == mlp.config
    for name, tensor in mlp.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    assert not torch.equal(loaded.center, torch.zeros_like(loaded.center)), "the buffer was saved, not the default"


def test_missing_standardisation_tensor_is_refused(tmp_path, tiny_hosts):
    _bundle(tmp_path, tiny_hosts("gemma3_text"))
    _resave_tensors(lambda t: t.pop("pii.scale"))(tmp_path / "b")
    with pytest.raises(BundleCorruptError, match=r"pii\.scale"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("family", ["gemma3_text", "bert"])
@pytest.mark.slow
def test_onnx_scores_the_mlp_head_like_torch(tmp_path, tiny_hosts, family):
    host = tiny_hosts(family)
    _bundle(tmp_path, host)
    base = {"cache_dir": tmp_path / "cache", "host_path": host, "window_tokens": 64, "window_overlap": 8}
    torch_det = Detector.load(tmp_path / "b", DetectorSettings(**base, backend="torch"))
    onnx_det = Detector.load(tmp_path / "b", DetectorSettings(**base, backend="onnx"))
    probs_t, _ = torch_det.score(torch_det.encode(TEXTS))
    probs_o, _ = onnx_det.score(onnx_det.encode(TEXTS))
    for a, b in zip(probs_t, probs_o, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    spans_t = [[(s.label, s.start, s.end) for s in r.spans] for r in torch_det.detect(TEXTS)]
    spans_o = [[(s.label, s.start, s.end) for s in r.spans] for r in onnx_det.detect(TEXTS)]
    assert spans_t == spans_o


def test_mlp_head_reads_its_right_context():
    head = build_head(TokenMLPConfig(name="pii", layer=0, labels=("PERSON",), lookahead=1, hidden=4), 3)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()
    from probeguard.detector.activations import Activations

    h = torch.randn(1, 3, 3)
    mask = torch.ones(1, 3, dtype=torch.bool)
    changed = h.clone()
    changed[0, 2] += 5.0
    a = head(Activations(layers={0: h}, attention_mask=mask, content_mask=mask))
    b = head(Activations(layers={0: changed}, attention_mask=mask, content_mask=mask))
    assert torch.equal(a[0, 0], b[0, 0]), "token 0 reads tokens 0..1 only"
    assert not torch.equal(a[0, 1], b[0, 1]), "token 1 reads token 2"
