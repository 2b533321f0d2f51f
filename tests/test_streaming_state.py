"""Streaming state (#34, first step): the attention-pooled head updated chunk by chunk equals the head on the whole
text, whatever the cuts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from probeguard.detector.activations import Activations
from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead
from probeguard.detector.streaming import AttentionPoolState

D = 8


def _head(seed: int) -> AttentionPoolHead:
    torch.manual_seed(seed)
    head = AttentionPoolHead(AttentionPoolConfig(name="unsafe", layer=1, labels=("unsafe", "other"), heads=3), D)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, 1.0)  # large enough that the softmax's maximum moves between chunks
        head.set_standardisation(torch.randn(D), torch.rand(D) + 0.5)
    return head.eval()


def _whole(head: AttentionPoolHead, acts: np.ndarray) -> np.ndarray:
    h = torch.from_numpy(acts).unsqueeze(0)
    mask = torch.ones(1, len(acts), dtype=torch.bool)
    with torch.no_grad():
        return head(Activations(layers={1: h}, attention_mask=mask, content_mask=mask))[0].double().numpy()


@pytest.mark.parametrize("seed", range(5))
def test_chunked_updates_equal_the_head_on_the_whole_text(seed):
    head, rng = _head(seed), np.random.default_rng(seed)
    acts = rng.normal(scale=3.0, size=(int(rng.integers(2, 300)), D)).astype(np.float32)
    cuts = sorted(set(rng.integers(0, len(acts), size=int(rng.integers(1, 12))).tolist()) | {0, len(acts)})
    state = AttentionPoolState.of(head)
    for start, end in itertools.pairwise(cuts):
        state.update(acts[start:end])
        np.testing.assert_allclose(state.logits(), _whole(head, acts[:end]), atol=1e-5)  # every prefix too
    assert state.tokens == len(acts)


def test_no_token_is_the_bias_alone_and_bad_shapes_are_refused():
    head = _head(0)
    state = AttentionPoolState.of(head)
    state.update(np.zeros((0, D), dtype=np.float32))
    np.testing.assert_allclose(state.logits(), head.bias.detach().double().numpy())
    with pytest.raises(ValueError, match="expected activations"):
        state.update(np.zeros((3, D + 1), dtype=np.float32))


@pytest.mark.parametrize("family", ["gemma3_text", "llama", "qwen2", "gpt2"])
def test_the_cached_host_equals_the_whole_text_at_every_cut(family, tiny_hosts):
    """A causal host run chunk by chunk with its key/value cache gives each token the activations it has in the
    whole text (Gemma 3's sliding-window blocks included: the tiny host's window is 8 tokens, the text 40)."""
    from probeguard.detector.truncate import load_truncated_host

    host = load_truncated_host(tiny_hosts(family), [1, 3])
    ids = torch.randint(5, 100, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = host(ids, torch.ones_like(ids))
        cache, parts = None, []
        for start, end in itertools.pairwise([0, 1, 9, 10, 23, 40]):
            layers, cache = host.forward_cached(ids[:, start:end], cache)
            parts.append(layers)
    assert cache is not None and cache.tokens == 40 and cache.nbytes() > 0
    for i in range(len(host.layers)):
        chunked = torch.cat([p[i] for p in parts], dim=1)
        torch.testing.assert_close(chunked, whole[i], atol=1e-4, rtol=1e-4)


def test_the_state_per_stream_is_bounded_by_the_sliding_window_and_the_costs_are_reported(tiny_hosts):
    """Tiny Gemma 3: blocks 1 and 3 slide over 8 tokens, 2 is global; from 16 to 64 tokens only the global block's
    cache grows (by 48 tokens x 2 x 16 floats). The delta benchmark times every delta both ways."""
    from probeguard.detector.truncate import load_truncated_host
    from probeguard.loadtest.stream_state import delta_costs, state_bytes

    host = load_truncated_host(tiny_hosts("gemma3_text"), [3])
    ids = torch.randint(5, 100, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sizes = state_bytes(host, ids, (16, 64), chunk=5)
        costs = delta_costs(host, ids[:, :30], 10)
    assert sizes["64"] - sizes["16"] == 48 * 2 * 16 * 4  # one global block: keys and values, 1 head x 16, fp32
    assert costs["deltas"] == 3 and {"cached", "rescore_prefix", "one_pass_s"} <= set(costs)


def test_an_encoder_host_is_refused_clearly(tiny_hosts):
    """BERT reads the text both ways: a token's activations change when more text arrives, so it cannot be streamed."""
    from probeguard.detector.errors import HostError
    from probeguard.detector.truncate import load_truncated_host

    encoder, decoder = (load_truncated_host(tiny_hosts(f), [2]) for f in ("bert", "llama"))
    assert not encoder.causal and decoder.causal
    with pytest.raises(HostError, match="streaming needs a causal host; bert reads the text both ways"):
        encoder.forward_cached(torch.tensor([[5, 6, 7]]), None)
