"""The fine-tuned-block experiment (training.block_select): a copy of block K + 1 run on cached layer-K content tokens
must reproduce the host's own layer K + 1, whatever the padding; the fit trains the copy, not the host's block."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from experiments.block_select.run import BlockAttention, BlockHost, block_scores, fit_block
from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead
from probeguard.detector.tokenize import HostTokenizer
from probeguard.detector.truncate import load_host_config, load_truncated_host


def _tiny_block_host(path, layer: int) -> tuple[BlockHost, object, list[int]]:
    base = load_truncated_host(path, [layer + 1], load_host_config(path), attn_implementation="eager").base
    prefix = list(HostTokenizer.from_folder(path).prefix_ids)
    return BlockHost.from_base(base, layer, prefix), base, prefix


def test_block_copy_on_cached_content_tokens_equals_the_hosts_next_layer(tiny_hosts):
    layer = 2
    host, base, prefix = _tiny_block_host(tiny_hosts("gemma3_text"), layer)
    model = BlockAttention(host, AttentionPoolHead(AttentionPoolConfig(name="u", layer=0, labels=("u",)), 32))
    texts = [[40, 41, 42, 43, 44, 45, 46], [50, 51, 52]]  # two lengths: the short one is right-padded
    cached, expected = [], []
    with torch.no_grad():
        for ids in texts:
            full = torch.tensor([prefix + ids])
            hidden = base(input_ids=full, attention_mask=torch.ones_like(full), output_hidden_states=True).hidden_states
            cached.append(hidden[layer][0, len(prefix) :])  # what the activation store keeps: content tokens
            expected.append(hidden[layer + 1][0, len(prefix) :])
        h = torch.zeros(2, 7, 32)
        mask = torch.zeros(2, 7, dtype=torch.bool)
        for i, c in enumerate(cached):
            h[i, : len(c)], mask[i, : len(c)] = c, True
        out = model.block_out(h, mask)  # [2, 7, 32]
    for i, e in enumerate(expected):
        assert torch.allclose(out[i, : len(e)], e, atol=1e-4), (i, (out[i, : len(e)] - e).abs().max())


def test_fit_trains_the_copy_and_leaves_the_hosts_block_alone(tiny_hosts):
    host, _, _ = _tiny_block_host(tiny_hosts("gemma3_text"), 1)
    before = {k: v.clone() for k, v in host.block.state_dict().items()}
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(int(rng.integers(3, 9)), 32)).astype(np.float32) for _ in range(40)]
    y = np.arange(40) % 2
    for i in np.flatnonzero(y):
        acts[i] += 1.5
    args = argparse.Namespace(queries=2, block_lr=1e-3, epochs=5)
    model = fit_block(host, acts, y, 0, (torch.zeros(32), torch.ones(32)), args)
    assert all(torch.equal(before[k], v) for k, v in host.block.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.block.state_dict().items())
    scores = block_scores(model, acts)
    assert scores[y == 1].mean() > scores[y == 0].mean()
