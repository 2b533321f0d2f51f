"""onnxruntime backend: one session over the fused host+heads graph; CUDA when available, CPU otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probeguard.detector.backends.base import HeadLogits, layer_output_name, output_name
from probeguard.detector.batching import PassCost
from probeguard.detector.errors import ConfigError, InferenceError
from probeguard.detector.tokenize import TokenBatch


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """`requested` if given (each must be available), else CUDA when available, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ConfigError(f"onnxruntime providers {missing} are not available (available: {available})")
        return list(requested)
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or ["CPUExecutionProvider"]


def open_session(path: Path, num_threads: int, providers: Sequence[str]) -> Any:  # onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No arena: with dynamic batch/sequence shapes the CPU arena keeps growing to every new peak shape
    # (measured: RSS +950 MB over a 30 s overload soak); plain allocations return memory after each batch.
    options.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad graph
        raise ConfigError(f"cannot open ONNX graph {path}: {type(exc).__name__}") from None


class OnnxLayerReader:
    """A host-only graph (detector.export.ensure_host_graph) as a training.activations.LayerReader:
    ids/mask [batch, seq] -> one [batch, seq, d_model] float32 array per layer, in `layers` order."""

    def __init__(self, path: Path, layers: Sequence[int], d_model: int, num_threads: int = 1) -> None:
        self.layers = tuple(layers)
        self.d_model = d_model
        self.session = open_session(path, num_threads, ["CPUExecutionProvider"])
        self.outputs = [layer_output_name(k) for k in self.layers]
        missing = sorted(set(self.outputs) - {o.name for o in self.session.get_outputs()})
        if missing:
            raise ConfigError(f"ONNX host graph {path} lacks outputs {missing}")

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return [np.asarray(o, dtype=np.float32) for o in self.session.run(self.outputs, feeds)]


class OnnxBackend:
    def __init__(
        self, path: Path, head_names: Sequence[str], num_threads: int = 1, providers: Sequence[str] | None = None
    ) -> None:
        self.providers = choose_providers(providers)
        self.path = path
        self.session = open_session(path, num_threads, self.providers)
        self.head_names = tuple(head_names)
        outputs = {o.name for o in self.session.get_outputs()}
        self.layer_names = tuple(sorted((n for n in outputs if n.startswith("layer_")), key=lambda n: int(n[6:])))
        missing = [n for n in self.head_names if output_name(n) not in outputs]
        if missing:
            raise ConfigError(f"ONNX graph {path} lacks outputs for heads {missing}")
        self.name = "onnx-" + self.providers[0].removesuffix("ExecutionProvider").lower()
        # Dense inputs with dynamic axes. On CPU a call costs ~20 tokens of compute and a row of L tokens
        # L x (1 + L / 730) (fitted, see detector.batching); on a GPU a launch costs far more than a short row, so rows
        # are batched more eagerly (512 is a starting point, not a measurement: no GPU was available to measure it).
        gpu = self.providers[0] != "CPUExecutionProvider"
        self.pass_cost = PassCost(pads=True, call_overhead_tokens=512 if gpu else 20, max_batch=None,
                                  attention_tokens=None if gpu else 730)  # fmt: skip

    def forward(self, batch: TokenBatch, layers: bool = False) -> HeadLogits:
        """Head logits; with `layers`, also the layer activations the heads read (graph outputs fetched only then)."""
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        names = [output_name(n) for n in self.head_names] + (list(self.layer_names) if layers else [])
        try:
            outputs = self.session.run(names, feeds)
        except Exception as exc:  # an ORT failure must fail this batch only, with a typed error
            raise InferenceError(f"onnxruntime failed on a batch of shape {batch.input_ids.shape}") from exc
        keys = [*self.head_names, *(self.layer_names if layers else ())]
        return {k: np.asarray(o, dtype=np.float32) for k, o in zip(keys, outputs, strict=True)}
