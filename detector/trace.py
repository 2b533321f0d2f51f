"""The layer trace: follow a decision through the host's depth. The full host runs once over the text (every block,
not the served truncation), and the bundle's per-layer probes (detector.trace_store) score the text at every layer,
so one sees at which depth a category forms and where in the text it sits.

Offline and debug only (`probeguard trace`, the console's /v1/trace): the served graph stays truncated and unchanged.
A text longer than one window is cut into the served windows; a layer's score is the max over windows, as served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.errors import ConfigError, EmptyInputError, ProbeguardError
from probeguard.detector.tokenize import EncodedText, HostTokenizer, plan_windows
from probeguard.detector.trace_store import LayerProbes
from probeguard.detector.truncate import TruncatedHost, load_host_config, load_truncated_host, num_host_layers


class TraceUnavailableError(ProbeguardError):
    """The bundle carries no layer-trace probes (retrain it, or add them with training.layer_trace)."""


@dataclass(frozen=True)
class CategoryTrace:
    scores: tuple[float, ...]  # per layer, probability (max over windows)
    thresholds: tuple[float, ...]  # per layer
    first_crossing: int | None  # the first layer whose score reaches its threshold; None if none does


@dataclass(frozen=True)
class TokenTrace:
    start: int  # character range in the text
    end: int
    scores: dict[str, float]  # category -> this token's probability under the served layer's probe


@dataclass(frozen=True)
class LayerTrace:
    layers: tuple[int, ...]  # 0 = embeddings, k = after block k; the last is before the final norm
    served_layer: int
    categories: dict[str, CategoryTrace]
    tokens: tuple[TokenTrace, ...]
    windows: int  # windows the text was cut into


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def first_crossing(scores: Sequence[float], thresholds: Sequence[float]) -> int | None:
    return next((i for i, (s, t) in enumerate(zip(scores, thresholds, strict=True)) if s >= t), None)


class LayerTracer:
    """The full host (blocks 1..L, final norm left out) and the bundle's per-layer probes."""

    def __init__(self, host: TruncatedHost, tokenizer: HostTokenizer, probes: LayerProbes, window_tokens: int,
                 overlap: int) -> None:  # fmt: skip
        self.host = host
        self.tokenizer = tokenizer
        self.probes = probes
        self.content_len = window_tokens - tokenizer.num_special
        self.overlap = overlap

    @classmethod
    def load(cls, host_path: Path, tokenizer: HostTokenizer, probes: LayerProbes | None, window_tokens: int,
             overlap: int, num_threads: int = 1) -> LayerTracer:  # fmt: skip
        """Raises TraceUnavailableError when `probes` is None (the bundle has no trace/). The torch host keeps to
        `num_threads` (torch's default would take every core, beside an ONNX session sharing them)."""
        if probes is None:
            raise TraceUnavailableError("this bundle has no layer-trace probes: retrain it (probeguard train) or add "
                                        "them with python -m probeguard.training.layer_trace")  # fmt: skip
        config = load_host_config(host_path)
        if num_host_layers(config) + 1 != len(probes.layers):
            raise ConfigError(f"trace probes cover {len(probes.layers)} layers; the host has "
                              f"{num_host_layers(config) + 1} (0..{num_host_layers(config)})")  # fmt: skip
        torch.set_num_threads(num_threads)
        return cls(load_truncated_host(host_path, probes.layers, config), tokenizer, probes, window_tokens, overlap)

    def encode(self, text: str) -> EncodedText:
        """The text's tokens; EmptyInputError when it has none."""
        enc = self.tokenizer.encode(text)
        if not len(enc.ids):
            raise EmptyInputError("nothing to trace: the text has no tokens")
        return enc

    def window_tokens(self, enc: EncodedText) -> int:
        """Tokens the trace runs through the full host (its windows, specials included): admission's work."""
        windows = plan_windows(len(enc.ids), self.content_len, self.overlap)
        return sum(w.end - w.start + self.tokenizer.num_special for w in windows)

    def trace(self, text: str) -> LayerTrace:
        return self.trace_encoded(self.encode(text))

    def trace_encoded(self, enc: EncodedText) -> LayerTrace:
        probes = self.probes
        windows = plan_windows(len(enc.ids), self.content_len, self.overlap)
        batch = self.tokenizer.collate(windows, [enc])
        with torch.inference_mode():
            hidden = self.host(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
        at = batch.content_offset
        served = probes.layers.index(probes.served_layer)
        window_logits = []  # per window [categories, layers]
        token_scores = np.zeros((len(enc.ids), len(probes.categories)))  # [tokens, categories]
        for row, w in enumerate(windows):
            n = w.end - w.start
            pooled = np.stack([h[row, at : at + n].numpy().mean(0) for h in hidden])  # [layers, d_model]
            window_logits.append(probes.logits(pooled))
            acts = hidden[served][row, at : at + n].numpy()  # [n, d_model]
            own = slice(w.own_start - w.start, w.own_end - w.start)
            token_scores[w.own_start : w.own_end] = _sigmoid(probes.token_logits(acts, probes.served_layer)[own])
        scores = _sigmoid(np.max(np.stack(window_logits), axis=0))  # [categories, layers]
        categories = {}
        for c, name in enumerate(probes.categories):
            per_layer = tuple(round(float(s), 6) for s in scores[c])
            thresholds = tuple(round(float(t), 6) for t in probes.thresholds[c])
            categories[name] = CategoryTrace(per_layer, thresholds, first_crossing(per_layer, thresholds))
        tokens = tuple(TokenTrace(int(s), int(e), {name: round(float(token_scores[i, c]), 6)
                                                   for c, name in enumerate(probes.categories)})
                       for i, (s, e) in enumerate(enc.offsets))  # fmt: skip
        return LayerTrace(probes.layers, probes.served_layer, categories, tokens, len(windows))
