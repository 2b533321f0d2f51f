"""Activation harvesting: texts -> per-text activations [n_tokens, d_model] at the layers heads will read.

Exactly the tensors the served model computes (same tokenizer, special tokens, truncated host), so heads train on
what they will see. Texts must fit one window (synthetic and instruction data do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from detector.tokenize import EncodedText, HostTokenizer, plan_windows
from detector.truncate import TruncatedHost


@dataclass(frozen=True)
class Harvest:
    encoded: list[EncodedText]
    layers: dict[int, list[np.ndarray]]  # layer -> per text [n_tokens, d_model] float16 (text tokens only)


def harvest(
    host: TruncatedHost,
    tokenizer: HostTokenizer,
    texts: Sequence[str],
    max_tokens: int,
    batch_size: int = 16,
    desc: str = "harvest",
) -> Harvest:
    encoded = [tokenizer.encode(t) for t in texts]
    too_long = [i for i, e in enumerate(encoded) if len(e.ids) > max_tokens]
    if too_long:
        raise ValueError(f"{len(too_long)} training texts exceed {max_tokens} tokens (first: index {too_long[0]})")
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))  # similar lengths -> little padding
    out: dict[int, list[np.ndarray | None]] = {k: [None] * len(texts) for k in host.layers}
    prefix = len(tokenizer.prefix_ids)
    with torch.inference_mode():
        for at in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            idx = order[at : at + batch_size]
            windows = [plan_windows(len(encoded[i].ids), max_tokens, 0, i)[0] for i in idx]
            batch = tokenizer.collate(windows, encoded)
            hidden = host(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            for k, h in zip(host.layers, hidden, strict=True):
                for row, i in enumerate(idx):
                    n = len(encoded[i].ids)
                    out[k][i] = h[row, prefix : prefix + n].to(torch.float16).numpy()
    return Harvest(encoded, {k: [a for a in v if a is not None] for k, v in out.items()})
