"""Offline experiment: does a *fine-tuned* host block separate harm from its look-alikes better than a probe?

Every unsafe head so far reads frozen activations, and every probe change (depth, pooling, queries, data, echo reads,
C, look-alike weights, a pair loss) moved held-out separation against benign twins by about 0.03 at most. This
measures the next lever, trained features: a copy of the host's own block K + 1 (the block that reads layer K,
initialised from the host's weights), fine-tuned together with an attention-pooled head on the cached layer-K tokens.
Serving it would cost one more block on the unsafe path (+1/K of the host's compute). Leave one family out with the
selection's folds and threshold rule (`fit.loso_table`, the same rows as `category_select --poolings attention`), so
its table sits beside the probe's. Measured (2026-12-06, defaults, 42 min on 2 threads): AUROC against benign twins
mean 0.936 vs the probe's 0.927 with more look-alikes flagged (README): not served.

    python -m experiments.block_select.run [--layer 8] [--epochs 2] [--block-lr 1e-4]
        [--families hh pairs] [--out b.json]
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead
from probeguard.training.attention_select import BATCH, TokenSource, length_batches, token_sources
from probeguard.training.fit import as_activations, loso_table, negative_split, pad_batch, standardisation

TWIN_FAMILIES = ("hh", "multilingual", "pairs", "pairs_b", "pairs_c", "pairs_d")  # families with benign twins


@dataclass(frozen=True)
class BlockHost:
    """The frozen pieces a block copy needs: block K + 1 of the host (it reads layer K), its rotary embedding and
    attention kind, and the layer-K activation of the prefix tokens (BOS: the same for every text, since they see only
    themselves; the cached activations hold content tokens only)."""

    block: nn.Module
    rotary: nn.Module
    layer_type: str | None
    prefix: torch.Tensor  # [n_prefix, d_model]

    @classmethod
    def from_base(cls, base: nn.Module, layer: int, prefix_ids: Sequence[int]) -> BlockHost:
        """`base`: a Hugging Face decoder base model with at least `layer` + 1 blocks (`.layers`, `.rotary_emb`)."""
        ids = torch.tensor([list(prefix_ids)])  # [1, n_prefix]
        with torch.no_grad():
            out = base(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True, use_cache=False)
        types = getattr(base.config, "layer_types", None)
        return cls(base.layers[layer], base.rotary_emb, types[layer] if types else None, out.hidden_states[layer][0])


def default_block_host(layer: int) -> BlockHost:
    """`BlockHost` of the packaged host (or `PROBEGUARD_HOST_PATH`), eager attention: the block takes a 4-D mask."""
    from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
    from probeguard.detector.settings import DetectorSettings
    from probeguard.detector.tokenize import HostTokenizer
    from probeguard.detector.truncate import load_host_config, load_truncated_host

    settings = DetectorSettings.from_env()
    host = resolve_host(DEFAULT_HOST_ID, settings.cache_dir, settings.host_path)
    truncated = load_truncated_host(host.path, [layer + 1], load_host_config(host.path), attn_implementation="eager")
    return BlockHost.from_base(truncated.base, layer, HostTokenizer.from_folder(host.path).prefix_ids)


class BlockAttention(nn.Module):
    """A trainable copy of the host block, then an attention-pooled head over its content tokens."""

    def __init__(self, host: BlockHost, head: AttentionPoolHead) -> None:
        super().__init__()
        self.block = copy.deepcopy(host.block).requires_grad_(True)
        self.rotary, self.layer_type = host.rotary, host.layer_type
        self.register_buffer("prefix", host.prefix)
        self.head = head

    def block_out(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h [batch, seq, d] content tokens at layer K, right-padded -> [batch, seq, d] at layer K + 1."""
        b, n_pre = h.shape[0], self.prefix.shape[0]
        x = torch.cat([self.prefix.expand(b, -1, -1), h], dim=1)  # [batch, n_pre + seq, d]
        seq = x.shape[1]
        keys = torch.cat([torch.ones(b, n_pre, dtype=torch.bool), mask], dim=1)  # [batch, n_pre + seq]
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        allowed = causal[None] & keys[:, None, :]  # [batch, seq, seq]
        bias = torch.zeros(b, 1, seq, seq).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
        pos = torch.arange(seq)[None].expand(b, -1)
        rope = self.rotary(x, pos, self.layer_type) if self.layer_type else self.rotary(x, pos)
        out = self.block(x, position_embeddings=rope, attention_mask=bias, position_ids=pos)
        out = out[0] if isinstance(out, tuple) else out
        return out[:, n_pre:]

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(as_activations(0, self.block_out(h, mask), mask))[:, 0]  # [batch] logits


def _batches(acts: Sequence[np.ndarray], size: int) -> list[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    return [(rows, *pad_batch([acts[i] for i in rows])) for rows in length_batches(np.array([len(a) for a in acts]),
                                                                                     size)]  # fmt: skip


def fit_block(host: BlockHost, acts: Sequence[np.ndarray], y: np.ndarray, seed: int, stats, args) -> BlockAttention:
    torch.manual_seed(seed)
    d_model = acts[0].shape[1]
    head = AttentionPoolHead(AttentionPoolConfig(name="unsafe", layer=0, labels=("unsafe",), heads=args.queries),
                             d_model)  # fmt: skip
    head.set_standardisation(*stats)
    with torch.no_grad():
        head.query.normal_(0, d_model**-0.5)
        head.value.normal_(0, d_model**-0.5)
    head.weight.requires_grad_(False)
    model = BlockAttention(host, head)
    opt = torch.optim.AdamW([{"params": model.block.parameters(), "lr": args.block_lr},
                             {"params": [p for p in head.parameters() if p.requires_grad], "lr": 1e-3}],
                            weight_decay=1e-3)  # fmt: skip
    positive_weight = float((y == 0).sum()) / max(float((y == 1).sum()), 1.0)
    targets = torch.from_numpy(y.astype(np.float32))
    batches = _batches(acts, BATCH // 2)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(args.epochs):
        for b in rng.permutation(len(batches)):
            rows, h, mask = batches[b]
            t = targets[rows]
            weight = torch.where(t == 1, torch.tensor(positive_weight), torch.tensor(1.0))
            loss = nn.functional.binary_cross_entropy_with_logits(model(h, mask), t, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def block_scores(model: BlockAttention, acts: Sequence[np.ndarray]) -> np.ndarray:
    out = np.empty(len(acts), dtype=np.float64)
    with torch.no_grad():
        for rows, h, mask in _batches(acts, 128):
            out[rows] = model(h, mask).double().numpy()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from probeguard.detector.settings import DetectorSettings
    from probeguard.training.category_sources import category_sources
    from probeguard.training.pii_harvest import harvester

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--block-lr", type=float, default=1e-4)
    p.add_argument("--queries", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--families",
        nargs="+",
        default=list(TWIN_FAMILIES),
        help="families held out (the others' folds are skipped; measured ~1.7 min per fit and epoch on 2 threads)",
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(DetectorSettings.from_env().num_threads)
    sources = [s for s in category_sources(args.seed) if s.category == "unsafe"]
    data: list[TokenSource] = token_sources(sources, harvester([args.layer]), args.layer)
    host = default_block_host(args.layer)
    negatives, _, keep, _ = negative_split(data, args.seed)
    neg_acts = [a for part in negatives for a in part.acts]
    with torch.no_grad():  # the head standardises the *initial* block's output on ordinary negatives
        probe = BlockAttention(host, AttentionPoolHead(AttentionPoolConfig(name="s", layer=0, labels=("s",)), 1))
        sample = [neg_acts[i] for i in keep[:: max(1, len(keep) // 300)]]
        outs = [probe.block_out(h, m)[m].numpy() for _, h, m in _batches(sample, 32)]
    stats = standardisation(outs)

    def fit_model(others: list[TokenSource], negs: list[np.ndarray]) -> BlockAttention:
        acts = [a for part in others for a in part.acts] + negs
        y = np.concatenate([part.y for part in others] + [np.zeros(len(negs))])
        return fit_block(host, acts, y, args.seed, stats, args)

    table = loso_table(data, lambda part: list(part.acts), fit_model, block_scores, 0.01, args.seed, True,
                       families=set(args.families))  # fmt: skip
    summary = {"unsafe": {"candidates": {f"L{args.layer}/block+attention": {"by_source": table, "rank": 0.0}}},
               "args": {k: v for k, v in vars(args).items() if k != "out"}}  # fmt: skip
    print(json.dumps(summary["args"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
