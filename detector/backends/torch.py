"""PyTorch backend: eager truncated host + heads, for development, training and parity checks."""

from __future__ import annotations

import numpy as np
import torch

from probeguard.detector.backends.base import HeadLogits, layer_output_name
from probeguard.detector.batching import PassCost
from probeguard.detector.errors import InferenceError
from probeguard.detector.model import ProbeModel
from probeguard.detector.tokenize import TokenBatch


class TorchBackend:
    name = "torch-cpu"
    # Dense [batch, seq] tensors; CPU call overhead and attention measured on the ONNX graph (detector.batching).
    pass_cost = PassCost(pads=True, call_overhead_tokens=20, max_batch=None, attention_tokens=730)

    def __init__(self, model: ProbeModel, num_threads: int = 1) -> None:
        torch.set_num_threads(num_threads)
        self.model = model.eval()

    def forward(self, batch: TokenBatch, layers: bool = False) -> HeadLogits:
        input_ids = torch.from_numpy(batch.input_ids)
        mask = torch.from_numpy(batch.attention_mask)
        try:
            with torch.inference_mode():
                outputs = self.model(input_ids, mask)
        except RuntimeError as exc:
            raise InferenceError(f"torch forward failed on a batch of shape {tuple(input_ids.shape)}") from exc
        names = [*self.model.head_names, *(layer_output_name(k) for k in self.model.host.layers)]
        return {
            name: out.float().numpy().astype(np.float32, copy=False)
            for name, out in zip(names, outputs, strict=True)
            if layers or name in self.model.head_names
        }
