"""How faithful the SAE explanation of a category score is, on dev texts the bundle never saw.

For each flagged dev text (positive and look-alike sources), through the truncated host and the category's attention
head, with the SAE on its layer (`detector.explain.attention_logit_parts`):
- residual: |sum of parts - logit| (exactness of the decomposition);
- error share: |SAE error term| / (sum of |feature parts| + |offset| + |error|): how much of the logit the SAE does not
  explain;
- deletion (comprehensiveness): remove the top-5 features' decoder directions from the activations (every token where
  they fired), recompute the head *with its attention softmax recomputed*, and take the logit drop; the same for 5
  random features that fired in the text; the ratio of mean drops says whether the cited features carry the score;
- sufficiency: the logit from the top-5 features' reconstruction alone (plus the SAE offset) against the full logit.

    python -m probeguard.training.explain_quality --sae FOLDER [--per-source 20]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.explain import LogitParts, attention_logit_parts
from probeguard.detector.heads.attention import AttentionPoolHead
from probeguard.detector.sae import SparseAutoencoder

TOP = 5


@dataclass(frozen=True)
class TextFaithfulness:
    residual: float
    error_share: float
    top_drop: float  # logit drop when the top-TOP features are deleted (attention recomputed)
    random_drop: float  # the same for TOP random features that fired
    sufficiency: float  # logit from the top features alone, over the full logit's distance from the bias


def _head_logit(head: AttentionPoolHead, acts: torch.Tensor, content: torch.Tensor) -> float:
    batch = Activations(layers={head.config.layer: acts[None]}, attention_mask=content[None],
                        content_mask=content[None])  # fmt: skip
    with torch.no_grad():
        return float(head(batch)[0, 0])


def _without(acts: torch.Tensor, codes: torch.Tensor, sae: SparseAutoencoder, features: Sequence[int]) -> torch.Tensor:
    """The activations with the given features' decoded part removed at every token ([seq, d_model])."""
    idx = torch.tensor(list(features), dtype=torch.long)
    return acts - codes[:, idx] @ sae.W_dec[idx]


def text_faithfulness(
    head: AttentionPoolHead, sae: SparseAutoencoder, acts: torch.Tensor, content: torch.Tensor, rng: np.random.Generator
) -> TextFaithfulness | None:
    """One window's figures; None when fewer than 2 x TOP features fired in the text (no random control)."""
    parts: LogitParts = attention_logit_parts(head, acts, content, sae=sae)
    f = parts.features
    if f is None:
        raise ConfigError("an SAE is needed to measure the feature explanation")
    with torch.no_grad():
        codes = sae.encode(acts) * content[:, None]  # [seq, d_sae]
    fired = np.flatnonzero(codes.sum(0).numpy() > 0)
    if len(fired) < 2 * TOP:
        return None
    top = [int(i) for i in np.argsort(-f.contributions)[:TOP]]
    others = [int(i) for i in fired if int(i) not in top]
    random = [int(i) for i in rng.choice(others, size=TOP, replace=False)]
    full = _head_logit(head, acts, content)
    drop_top = full - _head_logit(head, _without(acts, codes, sae, top), content)
    drop_random = full - _head_logit(head, _without(acts, codes, sae, random), content)
    kept = float(f.contributions[top].sum()) + f.offset
    mass = float(np.abs(f.contributions).sum()) + abs(f.offset) + abs(f.error)
    return TextFaithfulness(
        residual=abs(parts.feature_total() - parts.logit),
        error_share=abs(f.error) / mass if mass else 0.0,
        top_drop=drop_top,
        random_drop=drop_random,
        sufficiency=kept / (parts.logit - parts.bias) if parts.logit != parts.bias else float("nan"),
    )


def summarise(rows: Sequence[TextFaithfulness]) -> dict[str, float]:
    arr = {k: np.array([getattr(r, k) for r in rows]) for k in TextFaithfulness.__dataclass_fields__}
    random_mean = float(arr["random_drop"].mean())
    return {
        "texts": len(rows),
        "residual_max": float(arr["residual"].max()),
        "error_share_median": round(float(np.median(arr["error_share"])), 4),
        "error_share_p90": round(float(np.quantile(arr["error_share"], 0.9)), 4),
        "top5_drop_mean": round(float(arr["top_drop"].mean()), 4),
        "random5_drop_mean": round(random_mean, 4),
        "deletion_ratio": round(float(arr["top_drop"].mean()) / random_mean, 2) if random_mean else float("inf"),
        "sufficiency_median": round(float(np.nanmedian(arr["sufficiency"])), 4),
    }


def main(argv: list[str] | None = None) -> int:
    from probeguard.detector import Detector, DetectorSettings
    from probeguard.detector.paths import default_bundle_path
    from probeguard.detector.sae import read_sae_folder
    from probeguard.training.category_sources import category_sources

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", type=Path, required=True, help="an SAE folder (SAELens layout) on the heads' layer")
    p.add_argument("--bundle", help="default: the default bundle")
    p.add_argument("--per-source", type=int, default=20, help="flagged dev texts per source, at most")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = DetectorSettings.from_env(backend="torch")
    torch.set_num_threads(settings.num_threads)
    det = Detector.load(default_bundle_path(args.bundle, settings), settings)
    sae = read_sae_folder(args.sae, json.loads((args.sae / "cfg.json").read_text())["probeguard"]["name"])
    model = det.backend.model  # type: ignore[attr-defined]
    heads = {h.config.labels[0]: h for h in model.heads if isinstance(h, AttentionPoolHead)}
    rng = np.random.default_rng(args.seed)
    report: dict[str, object] = {"sae": str(args.sae), "bundle": det.info()["bundle"]["version"]}
    for category, head in heads.items():
        rows: list[TextFaithfulness] = []
        for source in category_sources(args.seed):
            if source.category != category or source.role not in ("positive", "lookalike"):
                continue
            texts = [r.text for r in source.dev if len(det.tokenizer.encode(r.text).ids) <= det.content_len]
            texts = texts[: 4 * args.per_source]  # enough to find per_source flagged ones in most sources
            flagged = [t for t, d in zip(texts, det.detect(texts), strict=True) if d.categories[category].flagged]
            for text in flagged[: args.per_source]:
                enc = det.tokenizer.encode(text)
                ids = torch.tensor([[*det.tokenizer.prefix_ids, *enc.ids, *det.tokenizer.suffix_ids]])
                acts = model.activations(ids, torch.ones_like(ids))
                row = text_faithfulness(head, sae, acts.layer(head.config.layer)[0], acts.content_mask[0], rng)
                if row is not None:
                    rows.append(row)
        report[category] = summarise(rows) if rows else {"texts": 0}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
