"""Roofline ratio: measured tokens/s of the truncated host (batched ONNX, fp32 and int8) against this machine's
measured fp32 GEMM peak x FLOPs per token of the truncated host. Each graph serves a bundle trained on its
arithmetic: by default the default bundle and the newest int8-trained shipped one (fp32 also as fp16 on a GPU).

FLOPs per token of K decoder blocks (multiply-add = 2 FLOPs), d = d_model, H = heads, Hkv = kv heads, h = head_dim,
f = MLP width, n = attended context (min(seq, sliding window)):
    per block = 2*d*(H*h) [q] + 2*2*d*(Hkv*h) [k, v] + 2*(H*h)*d [o] + 2*3*d*f [gated MLP] + 2*2*n*H*h [QK^T, AV]
    total     = K * per block + 2 * (weights of every head: a multiply-add per weight per token)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

FORMULA = "flops/token = K * (2*d*H*h + 4*d*Hkv*h + 2*H*h*d + 6*d*f + 4*n*H*h) + 2 * head weights"


def gemm_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Single-thread fp32 GEMM throughput (numpy/BLAS), best of `repeats`."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def flops_per_token(config, depth: int, seq: int, head_weights: int) -> float:
    """Host blocks plus one multiply-add per head weight (token heads read every token; sequence heads' pooled
    matmul is the same order per token)."""
    d, heads = int(config.hidden_size), int(config.num_attention_heads)
    kv, f = int(getattr(config, "num_key_value_heads", heads)), int(config.intermediate_size)
    h = int(getattr(config, "head_dim", d // heads))
    n = min(seq, int(getattr(config, "sliding_window", seq) or seq))
    block = 2 * d * heads * h + 4 * d * kv * h + 2 * heads * h * d + 6 * d * f + 4 * n * heads * h
    return depth * block + 2 * head_weights


def run(bundle: Path | None, threads: int, batch: int = 16, seq: int = 128) -> dict[str, object]:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.bundle import load_bundle
    from probeguard.detector.export import serving_variant
    from probeguard.detector.tokenize import TokenBatch, Window
    from probeguard.detector.truncate import load_host_config
    from probeguard.loadtest.variants import default_entries

    peak = gemm_peak_gflops()
    out: dict[str, object] = {"gemm_peak_gflops_1_thread": round(peak, 1), "formula": FORMULA, "batch": batch,
                              "seq": seq}  # fmt: skip
    import onnxruntime as ort

    gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    out["provider"] = "cuda" if gpu else "cpu"
    # GPU mode: with a CUDA provider present the graphs run there, and the fp16 graph is measured too.
    runs_of = []
    for path in [bundle] if bundle else [Path(p) for p in default_entries()]:
        trained = serving_variant(load_bundle(path).manifest.host.activations, "", "onnx")
        runs_of += [(path, v) for v in (("fp32", "fp16") if gpu and trained == "fp32" else (trained,))]
    for path, variant in runs_of:
        settings = DetectorSettings.from_env(backend="onnx", graph_variant=variant, num_threads=threads)
        det = Detector.load(path, settings)
        cfg = load_host_config(det.host.path)
        depth = max(det.bundle.manifest.layers)
        head_weights = sum(p.numel() for head in det.bundle.build_heads() for p in head.parameters())
        fpt = flops_per_token(cfg, depth, seq, head_weights)
        ids = np.random.default_rng(0).integers(1000, 20000, size=(batch, seq)).astype(np.int64)
        tb = TokenBatch(ids, np.ones_like(ids), tuple(Window(i, 0, seq, 0, seq) for i in range(batch)), 1)
        det.backend.forward(tb)
        started, runs = time.perf_counter(), 5
        for _ in range(runs):
            det.backend.forward(tb)
        tokens_per_s = runs * batch * seq / (time.perf_counter() - started)
        out[variant] = {"bundle": f"{det.bundle.manifest.name}/{det.bundle.manifest.version}",
                        "tokens_per_s": round(tokens_per_s, 1), "gflops_per_token": round(fpt / 1e9, 4),
                        "achieved_gflops": round(tokens_per_s * fpt / 1e9, 1),
                        "roofline_ratio": round(tokens_per_s * fpt / 1e9 / (peak * threads), 3)}  # fmt: skip
        out["depth"] = depth
        del det
    return out
