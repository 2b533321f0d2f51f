"""Sparse autoencoders: train a TopK SAE on harvested activations, or load an external one in SAELens format, and
build SAE-feature heads (an L1-sparse linear classifier on a named SAE's codes; the SAE is its own bundle artifact).

Inputs are rescaled by one scalar so that their mean squared norm is d_model (training is then scale-free); the
scale is folded back into the served encoder, so the head reads raw activations like every other head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.errors import BundleCorruptError, ConfigError
from probeguard.detector.heads import SAEFeatureConfig, SAEFeatureHead
from probeguard.detector.heads.pooling import pool
from probeguard.detector.sae import CFG_FILE, SAEConfig, SparseAutoencoder, read_sae_folder
from probeguard.training import fit


@dataclass
class SAEWeights:
    w_enc: torch.Tensor  # [d_model, d_sae], applied to raw activations
    b_enc: torch.Tensor  # [d_sae]
    b_dec: torch.Tensor  # [d_model]
    w_dec: torch.Tensor  # [d_sae, d_model], in raw activation space
    threshold: torch.Tensor  # [d_sae] (jumprelu; zeros for topk)
    activation: str  # "topk" | "jumprelu"
    k: int
    apply_b_dec_to_input: bool
    stats: dict[str, float]

    def to_sae(self, name: str, layer: int) -> SparseAutoencoder:
        """The served artifact: these weights as a named SAE on `layer`."""
        d_in, d_sae = self.w_enc.shape
        sae = SparseAutoencoder(SAEConfig(name=name, layer=layer, d_in=d_in, d_sae=d_sae, activation=self.activation,
                                          k=self.k, apply_b_dec_to_input=self.apply_b_dec_to_input))  # fmt: skip
        sae.load_state_dict({"W_enc": self.w_enc, "b_enc": self.b_enc, "b_dec": self.b_dec,
                             "threshold": self.threshold, "W_dec": self.w_dec})  # fmt: skip
        return sae


def _sample_rows(matrix: np.ndarray, n: int, gen: np.random.Generator) -> torch.Tensor:
    idx = np.sort(gen.choice(len(matrix), size=min(n, len(matrix)), replace=False))
    return torch.from_numpy(np.asarray(matrix[idx], dtype=np.float32))


def train_topk_sae(
    matrix: np.ndarray,  # [n_tokens, d_model] activations (memmap fine)
    d_sae: int,
    k: int,
    steps: int,
    batch_tokens: int = 512,
    lr: float = 5e-4,
    seed: int = 0,
) -> SAEWeights:
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    d_model = matrix.shape[1]
    probe = _sample_rows(matrix, 8192, gen)
    scale = float(np.sqrt(d_model) / probe.norm(dim=1).mean())
    w_dec = torch.randn(d_sae, d_model)
    w_dec = (w_dec / w_dec.norm(dim=1, keepdim=True)).requires_grad_(True)
    w_enc = w_dec.detach().T.clone().requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = (probe * scale).median(dim=0).values.clone().requires_grad_(True)
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=lr)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    for step in range(steps):
        x = _sample_rows(matrix, batch_tokens, gen) * scale
        pre = (x - b_dec) @ w_enc + b_enc
        top = torch.topk(pre, k, dim=-1)
        codes = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        loss = ((codes @ w_dec + b_dec - x) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_dec /= w_dec.norm(dim=1, keepdim=True)
            if step >= steps - max(steps // 5, 1):
                fired |= (codes > 0).any(0)
    with torch.no_grad():
        x = _sample_rows(matrix, 8192, gen) * scale
        pre = (x - b_dec) @ w_enc + b_enc
        top = torch.topk(pre, k, dim=-1)
        codes = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        recon = codes @ w_dec + b_dec
        fvu = float(((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
        l0 = float((codes > 0).sum(-1).float().mean())
        dead = 1 - float(fired.float().mean())
        stats = {"fvu": round(fvu, 4), "l0": round(l0, 2), "dead_fraction": round(dead, 4), "steps": steps,
                 "d_sae": d_sae, "k": k}  # fmt: skip
        return SAEWeights(
            w_enc=(w_enc * scale).detach(), b_enc=b_enc.detach(), b_dec=(b_dec / scale).detach(),
            w_dec=(w_dec / scale).detach(),
            threshold=torch.zeros(d_sae), activation="topk", k=k, apply_b_dec_to_input=True, stats=stats,
        )  # fmt: skip


def load_saelens(folder: Path, name: str = "external") -> SparseAutoencoder:
    """An external SAE in SAELens format (`cfg.json` + `sae_weights.safetensors`, JumpReLU or TopK) as a named SAE."""
    try:
        arch = str(json.loads((folder / CFG_FILE).read_text()).get("architecture", "jumprelu")).lower()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read SAELens folder {folder}: {type(exc).__name__}") from None
    if arch not in ("jumprelu", "topk"):
        raise ConfigError(f"{folder}/{CFG_FILE}: architecture {arch!r} is not supported (jumprelu, topk)")
    try:
        return read_sae_folder(folder, name)
    except BundleCorruptError as exc:
        raise ConfigError(str(exc)) from None


def sae_head(name: str, sae: SparseAutoencoder, labels: Sequence[str], level: str, pooling: str = "max"):
    """An SAEFeatureHead reading `sae`'s codes, with a zero classifier (fit it with `fit_sae_classifier`)."""
    config = SAEFeatureConfig(name=name, layer=sae.config.layer, labels=tuple(labels), sae=sae.config.name,
                              d_sae=sae.config.d_sae, level=level, pooling=pooling)  # fmt: skip
    return SAEFeatureHead(config, sae.config.d_in)


def sae_pooled_codes(
    head: SAEFeatureHead, sae: SparseAutoencoder, acts: Sequence[np.ndarray], batch_size: int = 64
) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for at in range(0, len(acts), batch_size):
            h, mask = fit.pad_batch(acts[at : at + batch_size])
            codes = sae.encode(h)
            out.append(pool(codes, mask, head.config.pooling, head.config.window))  # type: ignore[attr-defined]
    return torch.cat(out)


def fit_sae_classifier(head: SAEFeatureHead, codes: torch.Tensor, y: np.ndarray, l1: float, epochs: int = 300) -> int:
    """L1-sparse logistic readout on pooled codes (standardised, folded back); returns non-zero feature count."""
    mu, sigma = codes.mean(0), codes.std(0).clamp(min=1e-3)
    x = (codes - mu) / sigma
    target = torch.from_numpy(y.astype(np.float32))
    pos = target.sum(0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=((len(target) - pos) / pos.clamp(min=1)).clamp(1.0, 100.0))
    w = torch.zeros(target.shape[1], x.shape[1], requires_grad=True)
    b = torch.zeros(target.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    for _ in range(epochs):
        loss = loss_fn(x @ w.T + b, target) + l1 * w.abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w[w.abs() < 1e-3] = 0.0  # prune what L1 drove to (near) zero
        head.weight.copy_(w / sigma)
        head.bias.copy_(b - (w * (mu / sigma)).sum(1))
    return int((w != 0).any(0).sum())
