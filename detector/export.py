"""ONNX export: host truncated at the deepest layer read + every active head, pooling in-graph, as one graph.

Inputs `input_ids`, `attention_mask` ([batch, seq] int64, dynamic axes); one output per head (`head_<name>`: token
heads [batch, seq, labels], sequence heads [batch, labels]; logits). Graphs are built on first use into
`<cache>/graphs/<key>/` where the key hashes the bundle manifest, the heads file, the host weights and the variant,
so a changed bundle or host never reuses a stale graph. Variants: `fp32` (CPU and CUDA), `int8` (the host's
MatMuls quantised per token, below; CPU), `fp16` (CUDA; the residual stream's large values make this lossy on
Gemma, so check spans, not just max diff).

**int8 recipe** (`detector.quantize`): per-token int8 activations x per-channel 7-bit weights, only MatMuls inside
the host; heads and SAEs stay fp32. A bundle trained on int8 activations harvests them from `ensure_host_graph` (the
truncated host alone, quantised by the same recipe), so its heads see at training time exactly the arithmetic they
are served with; each row's scale is its own, so a score does not depend on the other texts of its batch.
"""

from __future__ import annotations

import ast
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

from probeguard.detector.backends.base import layer_output_name, output_name
from probeguard.detector.bundle import MANIFEST, Bundle
from probeguard.detector.errors import BundleHostMismatchError, ConfigError, HostError
from probeguard.detector.host import HostInfo, exclusive_lock
from probeguard.detector.model import ProbeModel
from probeguard.detector.quantize import RECIPE, quantize_rowwise
from probeguard.detector.truncate import TruncatedHost

log = logging.getLogger(__name__)
VARIANTS: tuple[str, ...] = ("fp32", "int8", "fp16")
OPSET = 20  # opset 23's RotaryEmbedding fails in onnxruntime 1.31 for batch > 1
# Changing how int8 is built changes its activations: the recipe name is part of every graph key and of a bundle's
# host.activations check, so a graph or bundle built by an older recipe is never reused.
QUANT_RECIPE = RECIPE
# Root module of the host: `host` inside ProbeModel, `base` inside a bare TruncatedHost. Only MatMuls traced from
# under it are quantised; heads and SAEs (and any node the exporter recorded no module for) stay fp32.
_HOST_ROOTS = ("host", "base")
INPUT_NAMES = ("input_ids", "attention_mask")


# What a served graph outputs; part of its cache key, so a graph built before a change is never reused.
GRAPH_OUTPUTS = "heads+layers"


def graph_key(bundle: Bundle, host: HostInfo, variant: str) -> str:
    h = hashlib.sha256()
    if bundle.path is not None:
        h.update((bundle.path / MANIFEST).read_bytes())
    h.update(json.dumps(bundle.manifest.to_dict(), sort_keys=True).encode())
    h.update(f"|{host.sha256}|{_recipe(variant)}|{OPSET}|{torch.__version__}|{GRAPH_OUTPUTS}".encode())
    return h.hexdigest()[:20]


def host_graph_key(host: HostInfo, layers: tuple[int, ...], variant: str) -> str:
    h = hashlib.sha256(f"host|{host.sha256}|{list(layers)}|{_recipe(variant)}|{OPSET}|{torch.__version__}".encode())
    return "host-" + h.hexdigest()[:20]


def _recipe(variant: str) -> str:
    return QUANT_RECIPE if variant == "int8" else variant


def activations_of(variant: str) -> str:
    """What a bundle trained on this graph variant records as `host.activations`."""
    if variant not in ("fp32", "int8"):
        raise ConfigError(f"heads can be trained on fp32 or int8 activations, not {variant!r}")
    return _recipe(variant)


def serving_variant(trained_on: str, requested: str, backend: str) -> str:
    """The graph variant a bundle is served with: `requested`, or (empty) the one its heads were trained on.

    A mismatch is refused: heads read the activations of the arithmetic they were fitted on, and fp32 heads on int8
    activations (or the other way round) score something else. fp16 (CUDA) serves an
    fp32 bundle; the torch backend computes fp32 only."""
    if trained_on == "fp32":
        if requested in ("", "fp32", "fp16"):
            return requested or "fp32"
    elif trained_on == QUANT_RECIPE:
        if backend != "onnx":
            raise BundleHostMismatchError(
                f"this bundle's heads were trained on int8 activations ({trained_on}); the {backend} backend computes "
                "fp32: serve it with PROBEGUARD_BACKEND=onnx"
            )
        if requested in ("", "int8"):
            return "int8"
    else:
        raise BundleHostMismatchError(
            f"this bundle's heads were trained on activations {trained_on!r}, which this detector cannot build (it "
            f"builds fp32 and {QUANT_RECIPE}): retrain the bundle"
        )
    raise BundleHostMismatchError(
        f"this bundle's heads were trained on {trained_on} activations and cannot be served on the {requested} graph: "
        "unset PROBEGUARD_GRAPH_VARIANT, or train a bundle for that variant ([host] variant in the training config)"
    )


def export_fp32(model: ProbeModel | TruncatedHost, path: Path) -> None:
    """Trace `model` (host+heads, or the host alone) to ONNX; outputs: one per head, or one per layer read."""
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
            output_names=_output_names(model),
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            external_data=False,
        )


def _output_names(model: ProbeModel | TruncatedHost) -> list[str]:
    if isinstance(model, TruncatedHost):
        return [layer_output_name(k) for k in model.layers]
    return [output_name(n) for n in model.head_names] + [layer_output_name(k) for k in model.host.layers]


def _module_path(node: object) -> str:
    """The torch module a traced node came from ('' if the exporter recorded none), e.g. 'host.base.layers.3.mlp'."""
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)  # "['', 'host', 'host.base', ..., 'linear']": modules, then node
            return str(scopes[-2]) if isinstance(scopes, list) and len(scopes) >= 2 else ""
    return ""


def host_matmuls(model: object) -> list[str]:
    """Names of the MatMul/Gemm nodes traced from host modules (not from heads or SAEs)."""
    out = []
    for node in model.graph.node:  # type: ignore[attr-defined]
        if node.op_type in ("MatMul", "Gemm") and _module_path(node).split(".")[0] in _HOST_ROOTS:
            out.append(node.name)
    return out


def _quantize_int8(src: Path, dst: Path) -> None:
    import onnx

    nodes = host_matmuls(onnx.load(str(src), load_external_data=False))
    if not nodes:
        raise HostError(f"int8: no host MatMul found in {src.name} (the exporter recorded no module scopes)")
    quantize_rowwise(src, dst, nodes)


def _convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def ensure_graph(
    build_model: Callable[[], ProbeModel], bundle: Bundle, host: HostInfo, cache_dir: Path, variant: str = "fp32"
) -> Path:
    """Path of the cached graph for (bundle, host, variant); the model is built and exported only on a miss."""
    meta = {"bundle": bundle.manifest.name, "version": bundle.manifest.version}
    return _ensure(cache_dir / "graphs" / graph_key(bundle, host, variant), build_model, host, variant, meta)


def ensure_host_graph(
    build_host: Callable[[], TruncatedHost], host: HostInfo, layers: tuple[int, ...], cache_dir: Path, variant: str
) -> Path:
    """The truncated host alone as a graph (outputs `layer_<k>` [batch, seq, d_model] per layer read), quantised by
    the same recipe as the served graph: what training harvests a non-fp32 bundle's activations from."""
    meta = {"layers": list(layers)}
    return _ensure(cache_dir / "graphs" / host_graph_key(host, layers, variant), build_host, host, variant, meta)


def _ensure(
    root: Path, build: Callable[[], ProbeModel | TruncatedHost], host: HostInfo, variant: str, meta: dict
) -> Path:
    if variant not in VARIANTS:
        raise ConfigError(f"graph variant must be one of {list(VARIANTS)}, got {variant!r}")
    final = root / "model.onnx"
    if final.is_file():  # exported (renamed into place last): no lock, no write, so a prepared cache can be read-only
        return final
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
            export_fp32(build(), staging / "fp32.onnx")
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
        meta = {**meta, "variant": variant, "recipe": _recipe(variant), "host_sha256": host.sha256, "opset": OPSET,
                "seconds": seconds}  # fmt: skip
        (root / "graph.json").write_text(json.dumps(meta, indent=2))
        log.info("exported ONNX graph", extra={"variant": variant, "seconds": meta["seconds"]})
    return final
