"""The int8 recipe: per-token (row) int8 activations x per-output-channel 7-bit weights, host MatMuls only.

onnxruntime's `quantize_dynamic` scales a MatMul's activations with one number per *tensor*, computed over the whole
batch. On Gemma 3 a few tokens (the first one above all) carry activations ~100x the others, so that one scale is set
by them: every other token is quantised coarsely (median 6 % relative error at layers 6/8 against fp32), and a row's
result changes with the other rows of its batch (median 7 %). Here each token row gets its own scale:

    A [.., k] float  --abs max over k--> s_row [.., 1] = max|A| / 127
    A_q = QuantizeLinear(A / s_row, scale 1, zero point 128)       # uint8 in [1, 255]
    Y   = MatMulInteger(A_q, W_q, 128) * s_row * s_col              # W_q int8 [k, n], s_col [n]

Measured on the 2-core box (layers 6/8 of Gemma 3 270M, 8 x 256 tokens, 1 thread): fp32 855 tokens/s; per-tensor
dynamic int8 2,180 (6.2 % error, batch dependent); this recipe 2,000-2,100 (3.1 % error, a row's result does not
depend on its batch). Inputs shared by several MatMuls (q/k/v, gate/up) are quantised once.

Weights use 7 bits (|W_q| <= 63): x86 CPUs without VNNI compute uint8 x int8 products with VPMADDUBSW, which
saturates a pair of products at 32,767; 255 x 63 x 2 = 32,130 never does, so every x86 CPU computes the same
activations the heads were trained on (8-bit weights: 2.7 % error, exact only on VNNI). The ops are standard ONNX
(opset >= 19), so any execution provider that has them runs the same graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probeguard.detector.errors import HostError

RECIPE = "int8-rowwise-act-7bit-weight-host-only-v3"
WEIGHT_MAX = 63  # 7-bit weights: no int16 saturation on x86 without VNNI (see module docstring)
ACT_MAX = 127.0
ZERO_POINT = 128


def quantize_rowwise(src: Path, dst: Path, nodes: Sequence[str]) -> int:
    """Rewrite the MatMuls named in `nodes` whose second input is a 2-D constant; returns how many were rewritten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wanted = set(nodes)
    added = [
        numpy_helper.from_array(np.array(ACT_MAX, np.float32), "rq_act_max"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "rq_eps"),
        numpy_helper.from_array(np.array(1.0, np.float32), "rq_one"),
        numpy_helper.from_array(np.array(ZERO_POINT, np.uint8), "rq_zero_point"),
        numpy_helper.from_array(np.array([-1], np.int64), "rq_last_axis"),
    ]
    out: list = []
    row_quantized: dict[str, str] = {}  # float input -> prefix of its (uint8, scale) pair
    rewritten = 0
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if node.name not in wanted or weight is None or len(weight.dims) != 2:
            out.append(node)
            continue
        a = node.input[0]
        w = numpy_helper.to_array(weight).astype(np.float32)  # [k, n]
        s_col = (np.maximum(np.abs(w).max(axis=0), 1e-12) / WEIGHT_MAX).astype(np.float32)  # [n]
        w_q = np.clip(np.round(w / s_col), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)  # [k, n]
        p = f"rq_{rewritten}"
        added += [numpy_helper.from_array(w_q, f"{p}_w_q"), numpy_helper.from_array(s_col, f"{p}_s_col")]
        if a not in row_quantized:
            q = row_quantized[a] = f"rq_in{len(row_quantized)}"
            out += [
                helper.make_node("Abs", [a], [f"{q}_abs"]),
                helper.make_node("ReduceMax", [f"{q}_abs", "rq_last_axis"], [f"{q}_max"], keepdims=1),
                helper.make_node("Max", [f"{q}_max", "rq_eps"], [f"{q}_max_eps"]),
                helper.make_node("Div", [f"{q}_max_eps", "rq_act_max"], [f"{q}_s_row"]),  # [.., 1]
                helper.make_node("Div", [a, f"{q}_s_row"], [f"{q}_scaled"]),
                helper.make_node("QuantizeLinear", [f"{q}_scaled", "rq_one", "rq_zero_point"], [f"{q}_q"]),
            ]
        q = row_quantized[a]
        out += [
            helper.make_node("MatMulInteger", [f"{q}_q", f"{p}_w_q", "rq_zero_point"], [f"{p}_int"]),
            helper.make_node("Cast", [f"{p}_int"], [f"{p}_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{p}_float", f"{q}_s_row"], [f"{p}_rows"]),
            helper.make_node("Mul", [f"{p}_rows", f"{p}_s_col"], [node.output[0]], name=node.name),
        ]
        rewritten += 1
    if not rewritten:
        raise HostError(f"int8: no host MatMul with a constant 2-D weight found in {src.name}")
    used = {i for n in out for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(out)
    del graph.initializer[:]
    graph.initializer.extend(keep + [i for i in added if i.name in used])
    onnx.save(model, str(dst))
    return rewritten
