"""Truncated host == full host's hidden_states[k], for every family we support."""

from __future__ import annotations

import pytest
import torch

from probeguard.detector.errors import HostError
from probeguard.detector.tokenize import HostTokenizer, whole_window
from probeguard.detector.truncate import load_full_host, load_truncated_host, truncated_config
from tests.tiny import NUM_LAYERS

TEXTS = ["Hello, my name is Anna Schmidt.", "Call me at +44 20 7946 0958 or write to 221B Baker Street, London."]


def _batch(folder):
    tok = HostTokenizer.from_folder(folder)
    enc = [tok.encode(t) for t in TEXTS]
    windows = [whole_window(i, len(e.ids)) for i, e in enumerate(enc)]
    return tok.collate(windows, enc)


@pytest.mark.parametrize("depth", [1, 2, NUM_LAYERS - 1])
def test_truncated_matches_full_hidden_states(tiny_hosts, family, depth, seed):
    folder = tiny_hosts(family)
    batch = _batch(folder)
    ids, mask = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
    assert mask[1].sum() > mask[0].sum(), "the batch must contain padding to test it"
    full = load_full_host(folder)
    with torch.inference_mode():
        reference = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    layers = list(range(0, depth + 1))
    truncated = load_truncated_host(folder, layers)
    assert truncated.depth == depth
    blocks = [m for m in truncated.base.modules() if isinstance(m, torch.nn.ModuleList)]
    assert len(blocks[0]) == depth, "blocks past the deepest layer must not be built"
    with torch.inference_mode():
        got = truncated(ids, mask)
    real = mask.bool()
    for k, h in zip(layers, got, strict=True):
        diff = (h - reference[k]).abs()[real].max().item()
        assert diff <= 1e-4, f"{family} layer {k}: max abs diff {diff}"
    # Deeper layers differ from shallower ones, so the comparison above is not vacuous.
    assert (got[-1] - got[0]).abs()[real].max().item() > 1e-2


def test_truncated_config_slices_layer_types(tiny_hosts):
    from probeguard.detector.truncate import load_host_config

    cfg = load_host_config(tiny_hosts("gemma3_text"))
    cut = truncated_config(cfg, 2)
    assert cut.num_hidden_layers == 2 and len(cut.layer_types) == 2
    assert cfg.num_hidden_layers == NUM_LAYERS, "the original config must not change"
    with pytest.raises(HostError, match="cannot truncate"):
        truncated_config(cfg, NUM_LAYERS + 1)
