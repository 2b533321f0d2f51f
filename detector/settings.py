"""Library settings, read from `PROBEGUARD_*` environment variables.

Each field carries a one-line trade-off comment. Values are validated on construction: a bad value is a
`ConfigError` naming the variable, raised at startup rather than at the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from probeguard.detector.errors import ConfigError
from probeguard.detector.typed_config import read_env


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "probeguard"


@dataclass(frozen=True)
class DetectorSettings:
    # Where the assembled GGUF, the converted safetensors host and built graphs live; must be writable once.
    cache_dir: Path = field(
        default_factory=default_cache_dir,
        metadata={"env": "PROBEGUARD_CACHE", "default": "`$XDG_CACHE_HOME/probeguard` or `~/.cache/probeguard`"},
    )
    # Bundle served when a command is given none: a path (an existing path wins) or '<name>/<version>' (or '<name>':
    # its newest version) from models_dir, then the shipped bundles. Empty = the newest shipped probeguard-base.
    bundle: str = ""
    # Folder of '<name>/<version>/' bundles you trained (outside the package), searched before the shipped ones by
    # `bundle` and by /admin/reload. None = the shipped bundles only.
    models_dir: Path | None = None
    # Host model folder (any Hugging Face model); None = the bundle's host (default: packaged Gemma 3 270M).
    host_path: Path | None = None
    # torch intra-op threads; 1 is safest on small shared boxes, more only helps with idle cores.
    num_threads: int = 1
    # Tokens per window including special tokens; longer windows give more context but cost O(n^2) attention.
    window_tokens: int = 512
    # Overlap between consecutive windows; more overlap = better context at seams, more compute.
    window_overlap: int = 64
    # Longest accepted text in characters; larger texts are refused with InputTooLargeError, never truncated.
    max_chars: int = 100_000
    # Work per forward pass in planned tokens (rows x longest row, attention included; see detector.batching), shared
    # by the service's micro-batcher: larger raises throughput under load, peak memory and each batch's latency.
    # At least window_tokens.
    batch_tokens: int = 4096
    # onnx: one fused graph built once into the cache, faster to serve; torch: no export step, slower per request.
    backend: str = "onnx"
    # ONNX graph: empty = the one the bundle's heads were trained on (fp32 or int8; a mismatch is refused at load);
    # fp16 serves an fp32 bundle on CUDA (faster, lossy on Gemma's residual stream).
    graph_variant: str = ""
    # onnxruntime providers in priority order, comma-separated; empty = CUDA if available, else CPU.
    providers: str = ""
    # Per-category thresholds replacing the bundle's, e.g. "unsafe=0.6,prompt_injection=0.9": higher flags fewer
    # look-alikes and misses more real cases (each bundle's report lists recall and FPR at a grid of thresholds).
    category_thresholds: str = ""

    def __post_init__(self) -> None:
        positive = ("num_threads", "window_tokens", "max_chars", "batch_tokens")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"setting {name} must be a positive integer, got {value!r}")
        if not isinstance(self.window_overlap, int) or self.window_overlap < 0:
            raise ConfigError(f"setting window_overlap must be a non-negative integer, got {self.window_overlap!r}")
        if self.backend not in ("torch", "onnx"):
            raise ConfigError(f"setting backend must be 'torch' or 'onnx', got {self.backend!r}")
        if self.graph_variant not in ("", "fp32", "int8", "fp16"):
            raise ConfigError(f"setting graph_variant must be empty, fp32, int8 or fp16, got {self.graph_variant!r}")
        if self.batch_tokens < self.window_tokens:
            raise ConfigError(
                f"setting batch_tokens ({self.batch_tokens}) must be at least window_tokens ({self.window_tokens})"
            )
        if self.window_tokens < 16:
            raise ConfigError(f"setting window_tokens must be at least 16, got {self.window_tokens}")
        self.threshold_overrides()  # a malformed value fails here, at startup
        if self.window_overlap * 2 >= self.window_tokens - 4:
            raise ConfigError(
                f"setting window_overlap ({self.window_overlap}) must be less than half of window_tokens "
                f"({self.window_tokens}) minus special tokens"
            )

    def threshold_overrides(self) -> dict[str, float]:
        """`category_thresholds` parsed: category -> threshold in (0, 1]; a malformed entry is a ConfigError."""
        out: dict[str, float] = {}
        for entry in (e.strip() for e in self.category_thresholds.split(",") if e.strip()):
            name, sep, raw = (part.strip() for part in entry.partition("="))
            try:
                value = float(raw) if sep and name else float("nan")
            except ValueError:
                value = float("nan")
            if not 0.0 < value <= 1.0 or name in out:
                raise ConfigError("PROBEGUARD_CATEGORY_THRESHOLDS: expected distinct 'category=threshold' entries "
                                  f"with thresholds in (0, 1], got {entry!r}")  # fmt: skip
            out[name] = value
        return out

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> DetectorSettings:
        """Build settings from `PROBEGUARD_<FIELD>` variables; explicit overrides win."""
        source = os.environ if env is None else env
        if "PROBEGUARD_BATCH_SIZE" in source:
            raise ConfigError(
                "PROBEGUARD_BATCH_SIZE was replaced by PROBEGUARD_BATCH_TOKENS (padded tokens per forward pass)"
            )
        values = read_env(cls, source)
        if "cache_dir" in values and values["cache_dir"] is None:
            raise ConfigError("PROBEGUARD_CACHE must not be empty")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
