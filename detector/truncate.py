"""Build the host with only the blocks the heads read.

**Layer numbering.** Layer `k` is the residual stream after `k` transformer blocks: layer 0 is the embedding output and
layer `k` equals Hugging Face's `hidden_states[k]` for `k < num_hidden_layers`. Running "to layer K" runs blocks
`1..K` inclusive (`model.layers[:K]`) and nothing after them: no later block, no final norm, no LM head. For
`K == num_hidden_layers` the served tensor is the last block's output *before* the final norm (transformers 5.x puts
the final norm into `hidden_states[L]`); heads are trained on exactly what is served, so this is consistent.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, DynamicCache, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from probeguard.detector.errors import HostError

log = logging.getLogger(__name__)

# Attribute names of a final norm applied after the last block, across the families we load.
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


def num_host_layers(config: PretrainedConfig) -> int:
    value = getattr(config, "num_hidden_layers", None)
    if not isinstance(value, int) or value < 1:
        raise HostError(f"host config has no usable num_hidden_layers (found {value!r})")
    return value


def truncated_config(config: PretrainedConfig, num_layers: int) -> PretrainedConfig:
    """A copy of `config` that builds only the first `num_layers` blocks."""
    total = num_host_layers(config)
    if not 0 <= num_layers <= total:
        raise HostError(f"cannot truncate a {total}-layer host to {num_layers} layers")
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = num_layers
    layer_types = getattr(cfg, "layer_types", None)
    if isinstance(layer_types, list | tuple):  # Gemma 3, Qwen 2: per-layer attention kinds
        cfg.layer_types = list(layer_types[:num_layers])
    cfg.use_cache = False
    return cfg


def _drop_final_norm(model: nn.Module) -> None:
    for name in _FINAL_NORM_NAMES:
        if isinstance(getattr(model, name, None), nn.Module):
            setattr(model, name, nn.Identity())
    if getattr(model, "pooler", None) is not None:  # BERT-style pooler: unused, skip its compute
        model.pooler = None


class TruncatedHost(nn.Module):
    """Embeddings + blocks 1..K of a Hugging Face base model; returns the layers asked for.

    forward(input_ids [batch, seq] int64, attention_mask [batch, seq] int64) -> one tensor per requested layer,
    each [batch, seq, d_model] float32, in the order of `layers`.
    """

    def __init__(self, base: PreTrainedModel, layers: Sequence[int]) -> None:
        super().__init__()
        if not layers:
            raise HostError("a truncated host needs at least one layer to read")
        self.base = base
        self.layers = tuple(sorted(set(int(k) for k in layers)))
        self.depth = self.layers[-1]  # deepest layer read; the base may hold one block more when depth == 0
        self._causal: bool | None = None  # measured on first use (`causal`)

    @property
    def causal(self) -> bool:
        """Whether a token's activations ignore the tokens after it, as streaming needs: measured once, four token
        ids run alone against the same four followed by four more (an encoder such as BERT reads both ways)."""
        if self._causal is None:
            ids = torch.arange(5, 13).unsqueeze(0)  # [1, 8]: ids every vocabulary has
            with torch.no_grad():
                whole, first = self(ids, torch.ones_like(ids)), self(ids[:, :4], torch.ones_like(ids[:, :4]))
            self._causal = all(torch.allclose(w[:, :4], f, atol=1e-4) for w, f in zip(whole, first, strict=True))
        return self._causal

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.base(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        hidden = out.hidden_states  # K + 1 tensors of [batch, seq, d_model]
        return tuple(hidden[k] for k in self.layers)

    def forward_cached(
        self, input_ids: torch.Tensor, cache: HostCache | None
    ) -> tuple[tuple[torch.Tensor, ...], HostCache]:
        """The layers of the next tokens of one text, `input_ids` [1, new], given the cache of the tokens before them
        (None: the text's first tokens): [1, new, d_model] each, in `layers` order, and the cache grown by them. On a
        causal host these equal `forward` on the whole text at those positions (the tokens before never change)."""
        if not self.causal:
            raise HostError(f"streaming needs a causal host; {self.base.config.model_type} reads the text both ways")
        cache = cache if cache is not None else HostCache(DynamicCache(config=self.base.config))
        seen = cache.tokens + input_ids.shape[1]
        mask = torch.ones(1, seen, dtype=torch.long)
        out = self.base(input_ids=input_ids, attention_mask=mask, past_key_values=cache.cache, use_cache=True,
                        output_hidden_states=True)  # fmt: skip
        return tuple(out.hidden_states[k] for k in self.layers), HostCache(out.past_key_values, seen)


@dataclass
class HostCache:
    """One text's key/value cache in a truncated causal host (`TruncatedHost.forward_cached`): the tokens seen so far
    and each block's keys and values (a sliding-window block keeps only its window)."""

    cache: DynamicCache
    tokens: int = 0

    def nbytes(self) -> int:
        """Bytes the cached keys and values hold."""
        tensors = [getattr(layer, name, None) for layer in self.cache.layers for name in ("keys", "values")]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def load_base_model(path: Path, config: PretrainedConfig, attn_implementation: str = "sdpa") -> PreTrainedModel:
    """Load a base model (no LM head) from a local folder with the given (possibly truncated) config."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # weights of dropped blocks are "unused"; that is the point
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(
            str(path),
            config=config,
            dtype=torch.float32,
            local_files_only=True,
            attn_implementation=attn_implementation,
        )
    except (OSError, ValueError) as exc:
        raise HostError(f"cannot load host model from {path}: {type(exc).__name__}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval()
    model.requires_grad_(False)
    return model


def load_host_config(path: Path) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HostError(f"cannot read host config in {path}: {exc}") from None


def load_truncated_host(
    path: Path, layers: Sequence[int], config: PretrainedConfig | None = None, attn_implementation: str = "sdpa"
) -> TruncatedHost:
    """Load only what layer max(layers) needs: blocks past it are never built, so never loaded."""
    config = config if config is not None else load_host_config(path)
    # Layer 0 alone is the embedding output; HF returns it only when at least one block runs, so build one.
    depth = max(1, max(layers))
    base = load_base_model(path, truncated_config(config, depth), attn_implementation)
    _drop_final_norm(base)
    return TruncatedHost(base, layers)


def load_full_host(path: Path, attn_implementation: str = "sdpa") -> PreTrainedModel:
    """The untruncated base model, for parity checks only."""
    config = load_host_config(path)
    config.use_cache = False
    return load_base_model(path, config, attn_implementation)
