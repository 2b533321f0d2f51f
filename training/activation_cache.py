"""On-disk activation cache: per layer one float32 memmap `[total_tokens, d_model]`, texts laid end to end.

float32, not float16: Gemma 3's residual stream exceeds float16's range (65504) on some tokens from layer 10 on
(measured: inf in 4-14 rows of 69k at layers 10-16), which silently poisons a probe with NaN.

Keyed by host sha256 + layers + window + the texts' hash, so a changed host, layer set or dataset never reuses a
stale cache. Harvesting writes chunk by chunk and records progress after each, so an interrupted run resumes where it
stopped; memory stays bounded by one chunk whatever the dataset size.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from probeguard.detector.tokenize import EncodedText, HostTokenizer, whole_window
from probeguard.detector.truncate import TruncatedHost

CHUNK_TEXTS = 256
log = logging.getLogger(__name__)


STORE_DTYPE = np.float32


class LayerReader(Protocol):
    """Whatever computes the host's activations for training: the torch host (fp32) or a host-only ONNX graph (the
    arithmetic a non-fp32 bundle is served with, see detector.export.ensure_host_graph)."""

    layers: tuple[int, ...]
    d_model: int

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Sequence[np.ndarray]:
        """[batch, seq] int64 twice -> one [batch, seq, d_model] float32 array per layer, in `layers` order."""
        ...


class TorchLayerReader:
    def __init__(self, host: TruncatedHost) -> None:
        self.host = host
        self.layers = host.layers
        self.d_model = int(host.base.config.hidden_size)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            hidden = self.host(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return [h.numpy() for h in hidden]


def dataset_key(host_sha256: str, layers: Sequence[int], window: int, texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{host_sha256}|{sorted(layers)}|{window}|{len(texts)}|{np.dtype(STORE_DTYPE)}".encode())
    for text in texts:
        h.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class ActivationStore:
    root: Path
    layers: tuple[int, ...]
    starts: np.ndarray  # [n_texts] first row of each text
    lengths: np.ndarray  # [n_texts] tokens of each text

    def matrix(self, layer: int) -> np.ndarray:
        """[total_tokens, d_model] float32, memory-mapped read-only."""
        return np.load(self.root / f"layer{layer}.npy", mmap_mode="r")

    def per_text(self, layer: int) -> list[np.ndarray]:
        """Views [n_i, d_model] per text (still memory-mapped)."""
        m = self.matrix(layer)
        return [m[s : s + n] for s, n in zip(self.starts, self.lengths, strict=True)]

    def __len__(self) -> int:
        return len(self.lengths)


def harvest_to_store(
    host: LayerReader,
    host_sha256: str,
    tokenizer: HostTokenizer,
    texts: Sequence[str],
    cache_root: Path,
    max_tokens: int,
    batch_size: int = 16,
    desc: str = "harvest",
) -> tuple[ActivationStore, list[EncodedText]]:
    encoded = [tokenizer.encode(t) for t in texts]
    lengths = np.array([len(e.ids) for e in encoded], dtype=np.int64)
    truncated = int((lengths > max_tokens).sum())
    if truncated:  # categories train on a long text's first window (serving takes the max over all windows)
        log.warning("inputs longer than one window use their first window", extra={"count": truncated, "desc": desc})
        lengths = np.minimum(lengths, max_tokens)
    starts = np.concatenate([[0], np.cumsum(lengths)])[:-1].astype(np.int64)  # [n_texts]; [] when empty
    layers = host.layers
    root = cache_root / "activations" / dataset_key(host_sha256, layers, max_tokens, texts)
    store = ActivationStore(root, layers, starts, lengths)
    progress_path = root / "progress.json"
    if (root / "complete").is_file():
        return store, encoded
    root.mkdir(parents=True, exist_ok=True)
    d_model = host.d_model
    total = int(lengths.sum())
    mode = "r+" if progress_path.is_file() else "w+"
    mats = {
        k: np.lib.format.open_memmap(root / f"layer{k}.npy", mode=mode, dtype=STORE_DTYPE, shape=(total, d_model))
        for k in layers
    }
    done = json.loads(progress_path.read_text())["texts_done"] if progress_path.is_file() else 0
    order = np.argsort(lengths, kind="stable")  # similar lengths per batch: little padding
    prefix = len(tokenizer.prefix_ids)
    with tqdm(total=len(texts), initial=done, desc=desc, unit="text", leave=False) as bar:
        for chunk_start in range(done, len(texts), CHUNK_TEXTS):
            chunk = order[chunk_start : chunk_start + CHUNK_TEXTS]
            for at in range(0, len(chunk), batch_size):
                idx = [int(i) for i in chunk[at : at + batch_size]]
                windows = [whole_window(i, int(lengths[i])) for i in idx]
                batch = tokenizer.collate(windows, encoded)
                hidden = host(batch.input_ids, batch.attention_mask)
                for k, values in zip(layers, hidden, strict=True):
                    for row, i in enumerate(idx):
                        mats[k][starts[i] : starts[i] + lengths[i]] = values[row, prefix : prefix + lengths[i]]
                bar.update(len(idx))
            for m in mats.values():
                m.flush()
            progress_path.write_text(json.dumps({"texts_done": chunk_start + len(chunk)}))
    (root / "complete").write_text("ok\n")
    return store, encoded
