"""The layer trace's probes: for every category, a linear probe on the text's mean-pooled residual stream at every
layer of the host, so a decision can be followed through the host's depth (`detector.trace` runs them).

Stored under `trace/` in the bundle, listed with their sha256 in the manifest's `trace` section:

- `trace.safetensors`: `weight` [categories, layers, d_model] (the standardisation and Platt scaling folded in: a
  text's probability is sigmoid(weight[c, k] . mean_t h_k[t] + bias[c, k])), `bias` and `thresholds` [categories,
  layers] (the threshold at the category's target false-positive rate on out-of-fold negatives, per layer).
- `trace.json`: the categories, the layers (layer k is the residual stream after k blocks: 0 the embedding output,
  the last the final block's output *before* the final norm, as `detector.truncate` numbers them), the layer the
  served heads read, and the per-layer report (dev AUROC per positive source against pooled negatives).

Being linear in the pooled activations, a probe's logit is the mean of its per-token logits: the per-token scores a
trace shows average to the text's logit at that layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from probeguard.detector.errors import BundleCorruptError

TRACE_DIR = "trace"
TRACE_META = "trace.json"
TRACE_TENSORS = "trace.safetensors"
TRACE_FILES = (TRACE_META, TRACE_TENSORS)


@dataclass(frozen=True)
class LayerProbes:
    categories: tuple[str, ...]
    layers: tuple[int, ...]  # 0..num_layers
    served_layer: int  # the layer the bundle's category heads read
    weight: np.ndarray  # [categories, layers, d_model] float32
    bias: np.ndarray  # [categories, layers]
    thresholds: np.ndarray  # [categories, layers] probabilities
    report: dict[str, Any] = field(default_factory=dict)  # per category: per layer dev AUROC by positive source

    def logits(self, pooled: np.ndarray) -> np.ndarray:
        """pooled [layers, d_model] (one text) -> [categories, layers] logits."""
        return np.einsum("cld,ld->cl", self.weight, pooled) + self.bias

    def token_logits(self, acts: np.ndarray, layer: int) -> np.ndarray:
        """acts [seq, d_model] at `layer` -> [categories, seq]: each token's logit under that layer's probe."""
        k = self.layers.index(layer)
        return acts @ self.weight[:, k].T + self.bias[:, k]  # [seq, categories]


def write_trace(folder: Path, probes: LayerProbes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"categories": list(probes.categories), "layers": list(probes.layers),
            "served_layer": probes.served_layer, "report": probes.report}  # fmt: skip
    (folder / TRACE_META).write_text(json.dumps(meta, indent=1) + "\n", "utf-8")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(getattr(probes, k), dtype=np.float32))
               for k in ("weight", "bias", "thresholds")}  # fmt: skip
    save_file(tensors, str(folder / TRACE_TENSORS))


def _bad(where: Path, msg: str) -> BundleCorruptError:
    return BundleCorruptError(f"{where}: {msg}")


def read_trace(folder: Path, d_model: int, num_layers: int) -> LayerProbes:
    """Read and check the probes against the host they describe (`d_model`, `num_layers` blocks)."""
    try:
        meta = json.loads((folder / TRACE_META).read_text("utf-8"))
        tensors = {k: v.numpy() for k, v in load_file(str(folder / TRACE_TENSORS)).items()}
    except (OSError, ValueError, SafetensorError) as exc:
        raise _bad(folder, f"unreadable trace probes ({type(exc).__name__}: {exc})") from None
    try:
        categories = tuple(str(c) for c in meta["categories"])
        layers = tuple(int(k) for k in meta["layers"])
        served = int(meta["served_layer"])
        weight, bias, thresholds = tensors["weight"], tensors["bias"], tensors["thresholds"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(folder, f"malformed trace probes ({type(exc).__name__}: {exc})") from None
    if layers != tuple(range(num_layers + 1)):
        raise _bad(folder, f"trace layers {list(layers)[:3]}… must be 0..{num_layers} (the host's blocks)")
    if served not in layers or not categories or len(set(categories)) != len(categories):
        raise _bad(folder, "trace probes need distinct categories and a served layer among their layers")
    shape = (len(categories), len(layers))
    if weight.shape != (*shape, d_model) or bias.shape != shape or thresholds.shape != shape:
        raise _bad(folder, f"trace tensors have shapes {weight.shape}/{bias.shape}/{thresholds.shape}, expected "
                           f"{(*shape, d_model)}/{shape}/{shape}")  # fmt: skip
    if not all(np.isfinite(a).all() for a in (weight, bias, thresholds)):
        raise _bad(folder, "trace tensors have non-finite values")
    return LayerProbes(categories, layers, served, weight, bias, thresholds, dict(meta.get("report") or {}))
