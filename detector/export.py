"""ONNX export: host truncated at the deepest layer read + every active head, pooling in-graph, as one graph.

Inputs `input_ids`, `attention_mask` ([batch, seq] int64, dynamic axes); one output per head (`head_<name>`: token
heads [batch, seq, labels], sequence heads [batch, labels]; logits). Graphs are built on first use into
`<cache>/graphs/<key>/` where the key hashes the bundle manifest, the heads file, the host weights and the variant,
so a changed bundle or host never reuses a stale graph. Variants: `fp32` (CPU and CUDA), `int8` (dynamic
quantisation of the MatMul weights, CPU), `fp16` (CUDA; the residual stream's large values make this lossy on
Gemma, so check spans, not just max diff).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from detector.bundle import MANIFEST, Bundle
from detector.errors import ConfigError, HostError
from detector.host import HostInfo, exclusive_lock
from detector.model import ProbeModel

log = logging.getLogger(__name__)
VARIANTS: tuple[str, ...] = ("fp32", "int8", "fp16")
OPSET = 20  # opset 23's RotaryEmbedding fails in onnxruntime 1.31 for batch > 1
INPUT_NAMES = ("input_ids", "attention_mask")


def output_name(head: str) -> str:
    return f"head_{head}"  # unique: "mean"/"max" would clash with names inside the graph


def graph_key(bundle: Bundle, host: HostInfo, variant: str) -> str:
    h = hashlib.sha256()
    if bundle.path is not None:
        h.update((bundle.path / MANIFEST).read_bytes())
    h.update(json.dumps(bundle.manifest.to_dict(), sort_keys=True).encode())
    h.update(f"|{host.sha256}|{variant}|{OPSET}|{torch.__version__}".encode())
    return h.hexdigest()[:20]


def export_fp32(model: ProbeModel, path: Path) -> None:
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17], [2, 20, 21, 22, 23, 24, 0, 0, 0]])
    mask = (ids != 0).long()
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    # The exporter prints progress to stdout; stdout belongs to the caller (`probeguard detect` writes JSON there).
    with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(
            model.eval(),
            (ids, mask),
            str(path),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=[output_name(n) for n in model.head_names],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            external_data=False,
        )


def _quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])


def _convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def ensure_graph(
    build_model: Callable[[], ProbeModel], bundle: Bundle, host: HostInfo, cache_dir: Path, variant: str = "fp32"
) -> Path:
    """Path of the cached graph for (bundle, host, variant); the model is built and exported only on a miss."""
    if variant not in VARIANTS:
        raise ConfigError(f"graph variant must be one of {list(VARIANTS)}, got {variant!r}")
    root = cache_dir / "graphs" / graph_key(bundle, host, variant)
    final = root / "model.onnx"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HostError(f"cannot create graph cache {root}: {exc.strerror}") from None
    with exclusive_lock(root / ".lock"):
        if final.is_file():
            return final
        started = time.perf_counter()
        staging = root / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            export_fp32(build_model(), staging / "fp32.onnx")
            if variant == "int8":
                _quantize_int8(staging / "fp32.onnx", staging / "model.onnx")
            elif variant == "fp16":
                _convert_fp16(staging / "fp32.onnx", staging / "model.onnx")
            else:
                (staging / "fp32.onnx").rename(staging / "model.onnx")
            (staging / "model.onnx").rename(final)
        except OSError as exc:
            raise HostError(f"writing the ONNX graph into {root} failed: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.perf_counter() - started, 1)
        meta = {"variant": variant, "bundle": bundle.manifest.name, "version": bundle.manifest.version,
                "host_sha256": host.sha256, "opset": OPSET, "seconds": seconds}  # fmt: skip
        (root / "graph.json").write_text(json.dumps(meta, indent=2))
        log.info("exported ONNX graph", extra={"variant": variant, "seconds": meta["seconds"]})
    return final
