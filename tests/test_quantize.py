"""The row-wise int8 recipe (detector.quantize) on a hand-built graph: only the named MatMuls with constant 2-D
weights are rewritten, each row is scaled on its own (an outlier row changes no other row), weights stay within 7 bits,
and the result is the fp32 product up to quantisation error."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from probeguard.detector.errors import HostError
from probeguard.detector.quantize import WEIGHT_MAX, quantize_rowwise

K, N = 64, 48


def _graph(path, weight: np.ndarray) -> None:
    """x [batch, seq, K] -> MatMul(x, W) -> y [batch, seq, N]; and y2 = MatMul(x, x^T-ish) with no constant."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", K])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", N])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="host_mm")], "g", [x], [y],
                          initializer=[numpy_helper.from_array(weight, "W")])  # fmt: skip
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), str(path))


def _run(path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]


@pytest.fixture
def graphs(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(K, N)).astype(np.float32)
    _graph(tmp_path / "fp32.onnx", weight)
    assert quantize_rowwise(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", ["host_mm"]) == 1
    return tmp_path / "fp32.onnx", tmp_path / "int8.onnx", rng


def test_rows_are_scaled_on_their_own(graphs):
    _, int8, rng = graphs
    x = rng.normal(size=(2, 5, K)).astype(np.float32)
    outlier = x.copy()
    outlier[1, 0] *= 300.0  # one token with huge activations, as Gemma's first token has
    a, b = _run(int8, x), _run(int8, outlier)
    np.testing.assert_array_equal(a[0], b[0])  # another text of the batch: unchanged
    np.testing.assert_array_equal(a[1, 1:], b[1, 1:])  # other tokens of the same text: unchanged
    np.testing.assert_allclose(_run(int8, x[:1]), a[:1], rtol=0, atol=1e-6)  # alone == in a batch


def test_close_to_fp32_and_weights_within_7_bits(graphs):
    fp32, int8, rng = graphs
    x = rng.normal(size=(3, 7, K)).astype(np.float32)
    ref, got = _run(fp32, x), _run(int8, x)
    rel = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)  # [3, 7]
    assert 0 < float(np.median(rel)) < 0.03
    model = onnx.load(str(int8))
    ops = [n.op_type for n in model.graph.node]
    assert "MatMul" not in ops and ops.count("MatMulInteger") == 1
    (w_q,) = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    assert w_q.shape == (K, N) and int(np.abs(w_q).max()) == WEIGHT_MAX


def test_nothing_to_quantise_is_an_error(graphs, tmp_path):
    fp32, _, _ = graphs
    with pytest.raises(HostError, match="no host MatMul"):
        quantize_rowwise(fp32, tmp_path / "none.onnx", ["some_other_node"])
