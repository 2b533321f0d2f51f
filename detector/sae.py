"""Sparse autoencoders as artifacts of their own (SAELens layout), encoded once per forward pass.

An SAE lives in a folder `cfg.json` + `sae_weights.safetensors` with SAELens names and hook metadata (`W_enc
[d_in, d_sae]`, `b_enc`, `b_dec`, JumpReLU `threshold`; `hook_name` "blocks.{i}.hook_resid_post" = our layer i + 1), so
an external SAELens SAE can be dropped into a bundle as is. Any number of SAE-feature heads read its codes by name;
`detector.model.ProbeModel` computes each SAE's codes once per batch into `Activations.features`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from probeguard.detector.errors import BundleCorruptError, ConfigError
from probeguard.detector.typed_config import JsonConfig

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(post|pre)")


@dataclass(frozen=True)
class SAEConfig(JsonConfig):
    name: str  # unique within a bundle; SAE-feature heads name it in their `sae` field
    layer: int  # residual stream it encodes: after this many blocks (see detector.truncate)
    d_in: int  # the host's d_model
    d_sae: int  # dictionary size; wider finds finer features, costs d_in * d_sae per token
    # jumprelu: per-feature learned threshold (Gemma Scope style); topk: exactly k active features per token.
    activation: str = "topk"
    k: int = 32  # active features per token for topk (ignored by jumprelu)
    apply_b_dec_to_input: bool = True  # SAELens: subtract b_dec from the input before encoding

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"SAE name {self.name!r} must match {_NAME.pattern}")
        for field_name in ("d_in", "d_sae"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SAE {self.name}: {field_name} must be a positive integer, got {value!r}")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            raise ConfigError(f"SAE {self.name}: layer must be a non-negative integer, got {self.layer!r}")
        if self.activation not in ("jumprelu", "topk"):
            raise ConfigError(f"SAE {self.name}: activation must be 'jumprelu' or 'topk', got {self.activation!r}")
        if self.activation == "topk" and not (isinstance(self.k, int) and 1 <= self.k <= self.d_sae):
            raise ConfigError(f"SAE {self.name}: k must be in [1, d_sae] for topk")


def hook_name(layer: int) -> str:
    """Our layer k (residual stream after k blocks) in SAELens hook terms."""
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


def layer_of_hook(name: str) -> int:
    """SAELens 'blocks.{i}.hook_resid_post' reads the residual stream after block i (0-based) = our layer i + 1."""
    m = _HOOK.fullmatch(name)
    if not m:
        raise ConfigError(f"unsupported SAELens hook {name!r}: expected blocks.N.hook_resid_post/pre")
    return int(m.group(1)) + (1 if m.group(2) == "post" else 0)


class SparseAutoencoder(nn.Module):
    """An SAE on one residual stream, in the raw activation space the heads read (SAELens layout and names). The
    encoder gives the features an SAE-feature head reads; the decoder writes activations as features (explanations)."""

    def __init__(self, config: SAEConfig) -> None:
        super().__init__()
        self.config = config
        self.W_enc = nn.Parameter(torch.zeros(config.d_in, config.d_sae))  # [d_in, d_sae]
        self.b_enc = nn.Parameter(torch.zeros(config.d_sae))  # [d_sae]
        self.b_dec = nn.Parameter(torch.zeros(config.d_in))  # [d_in]
        self.threshold = nn.Parameter(torch.zeros(config.d_sae))  # [d_sae]; jumprelu only
        self.W_dec = nn.Parameter(
            torch.zeros(config.d_sae, config.d_in)
        )  # [d_sae, d_in]: row f = feature f's direction

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d_in] -> codes [..., d_sae] (non-negative, sparse)."""
        x = h - self.b_dec if self.config.apply_b_dec_to_input else h
        pre = x @ self.W_enc + self.b_enc  # [..., d_sae]
        if self.config.activation == "jumprelu":
            return torch.where(pre > self.threshold, pre, torch.zeros_like(pre))
        top = torch.topk(pre, self.config.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [..., d_sae] -> reconstruction [..., d_in]; h = decode(encode(h)) + the SAE's error."""
        return codes @ self.W_dec + self.b_dec

    def tensors(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        return {k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()}


def saelens_cfg(config: SAEConfig) -> dict[str, Any]:
    """`cfg.json` in SAELens terms, plus our own fields (name, layer) so the folder is self-describing."""
    return {
        "architecture": config.activation,
        "d_in": config.d_in,
        "d_sae": config.d_sae,
        "hook_name": hook_name(config.layer),
        "apply_b_dec_to_input": config.apply_b_dec_to_input,
        "activation_fn_kwargs": {"k": config.k} if config.activation == "topk" else {},
        "probeguard": {"name": config.name, "layer": config.layer},
    }


def config_from_saelens(cfg: dict[str, Any], name: str, where: str) -> SAEConfig:
    """SAEConfig from a SAELens `cfg.json` (ours or an external one), named `name` (the bundle's name for it)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    arch = str(cfg.get("architecture", "jumprelu")).lower()
    kwargs = cfg.get("activation_fn_kwargs") or {}
    ours = cfg.get("probeguard") or {}
    try:
        layer = int(ours["layer"]) if "layer" in ours else layer_of_hook(str(cfg.get("hook_name", "")))
        return SAEConfig(
            name=name, layer=layer, d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]),
            activation=arch, k=int(cfg.get("k", kwargs.get("k", 1))),
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", False)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {type(exc).__name__} {exc}") from None


def write_sae_folder(sae: SparseAutoencoder, folder: Path, dtype: torch.dtype = torch.float32) -> None:
    """SAELens layout; float16 halves a bundle's SAE (it is read back as float32, the rounded values exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(sae.tensors(dtype), str(folder / WEIGHTS_FILE))
    (folder / CFG_FILE).write_text(json.dumps(saelens_cfg(sae.config), indent=2) + "\n", encoding="utf-8")


def read_sae_folder(folder: Path, name: str) -> SparseAutoencoder:
    """Load and check an SAE folder; any problem is a BundleCorruptError naming the file."""
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        config = config_from_saelens(cfg, name, str(cfg_path))
        own_name = (cfg.get("probeguard") or {}).get("name", name)
        if own_name != name:
            raise ConfigError(f"the folder holds SAE {own_name!r}, the manifest names it {name!r}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise BundleCorruptError(f"{cfg_path}: unreadable SAE config ({type(exc).__name__}: {exc})") from None
    try:
        raw = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleCorruptError(f"{weights_path}: unreadable safetensors ({type(exc).__name__})") from None
    sae = SparseAutoencoder(config)
    expected = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    if config.activation == "topk":
        raw.setdefault("threshold", torch.zeros(config.d_sae))
    tensors = {k: v.float() for k, v in raw.items() if k in expected}  # extras (SAELens scaling factors) are not read
    for key, shape in expected.items():
        if key not in tensors:
            raise BundleCorruptError(f"{weights_path}: missing tensor {key}")
        if tuple(tensors[key].shape) != shape:
            raise BundleCorruptError(f"{weights_path}: tensor {key} has shape {tuple(tensors[key].shape)}, "
                                     f"expected {shape}")  # fmt: skip
        if not torch.isfinite(tensors[key]).all():
            raise BundleCorruptError(f"{weights_path}: tensor {key} has non-finite values")
    sae.load_state_dict(tensors)
    return sae
