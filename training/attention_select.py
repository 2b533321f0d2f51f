"""Attention-pooled category heads (`AttentionPoolHead`), fitted with torch on cached per-token activations.

The served module itself is trained (no train/serve skew): inputs standardised with the token statistics of the
ordinary negatives (instructions, documents: what most traffic looks like), class-balanced BCE on the text logit,
AdamW, texts batched by similar length. Leave-one-source-out, the threshold rule and the row format mirror
`category_select.loso`, so the candidate is ranked beside mean pooling and window-max on the same held-out sources.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead
from probeguard.training.category_sources import CategorySource
from probeguard.training.fit import (
    as_activations,
    calibrate_category,
    loso_table,
    negative_split,
    out_of_fold,
    pad_batch,
    row_roles,
    standardisation,
)

LR = 1e-3
WEIGHT_DECAY = 1e-3  # AdamW; 1e-2 and 1e-4 were no better offline
BATCH = 64  # texts per step, batched by similar length


@dataclass(frozen=True)
class AttentionRecipe:
    """How one attention-pooled head is fitted (the config's categories.attention_* keys)."""

    epochs: int = 20  # passes over the train texts
    fits: int = 1  # heads from seeds seed, seed + 1, ... summed into one (`merge_heads`)
    queries: int = 4  # attention queries per fit (detector.heads.attention), trained jointly
    # Weight of a pairwise ranking loss on minimal pairs (softplus of benign twin's logit minus its harmful sibling's),
    # added to the BCE on batches of pairs whose two texts are both in the fit (`twin_pairs`); 0: BCE only.
    pair_weight: float = 0.0

    def __post_init__(self) -> None:
        for key in ("epochs", "fits", "queries"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AttentionRecipe.{key} must be a positive integer, got {value!r}")
        if not isinstance(self.pair_weight, int | float) or not 0 <= self.pair_weight <= 100:
            raise ValueError(f"AttentionRecipe.pair_weight must be a number in [0, 100], got {self.pair_weight!r}")


DEFAULT_RECIPE = AttentionRecipe()  # frozen: safe as an argument default


@dataclass
class TokenSource:
    source: CategorySource
    acts: list[np.ndarray]  # per text [n_tokens, d_model] (memory-mapped views)
    y: np.ndarray  # [n] 0/1


def token_sources(sources: Sequence[CategorySource], harvest, layer: int) -> list[TokenSource]:
    out = []
    for s in sources:
        store, _ = harvest([r.text for r in s.train], f"harvest {s.category}/{s.name}")
        out.append(TokenSource(s, store.per_text(layer), np.array([r.label for r in s.train])))
    return out


def twin_pairs(parts: Sequence[TokenSource]) -> np.ndarray:
    """[n_pairs, 2] (harmful row, benign row) indices into the parts' train rows concatenated in order, for every
    minimal pair (`LabelledText.pair`) whose two texts are both among them; empty [0, 2] when none."""
    rows = [r for part in parts for r in part.source.train]
    by_key: dict[str, dict[int, int]] = {}
    for i, r in enumerate(rows):
        if r.pair:
            by_key.setdefault(r.pair, {})[r.label] = i
    pairs = [(both[1], both[0]) for both in by_key.values() if len(both) == 2]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _pairs_within(pairs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`pairs` whose two rows are both in `rows`, renumbered as positions in `rows`."""
    position = np.full(int(max(pairs.max(initial=-1), rows.max(initial=-1))) + 1, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    mapped = position[pairs]  # [n_pairs, 2]
    return mapped[(mapped >= 0).all(axis=1)]


def length_batches(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """Row indices in batches of `size` texts of similar length (sorted), so tweets are not padded to a document."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]


def fit_attention(
    name: str,
    layer: int,
    acts: Sequence[np.ndarray],
    y: np.ndarray,
    seed: int,
    stats: tuple[torch.Tensor, torch.Tensor],
    recipe: AttentionRecipe = DEFAULT_RECIPE,
    pairs: np.ndarray | None = None,
) -> AttentionPoolHead:
    """An uncalibrated one-label head fitted on per-text token activations `acts` ([n_tokens, d_model] each).
    `pairs`: [n_pairs, 2] (harmful, benign twin) row indices for `recipe.pair_weight`'s ranking loss.
    `stats`: the input standardisation (`fit.standardisation` of ordinary negatives' tokens). Batches are padded
    once and visited in a new order each epoch (reading memory-mapped activations every epoch was 4x slower).
    `recipe.fits` > 1: that many heads from seeds seed, seed + 1, ..., merged (`merge_heads`); one fit's seed alone
    moved a source's dev recall by up to 0.18 (categories.attention_fits, training/train_config.py)."""
    if recipe.fits > 1:
        one = dataclasses.replace(recipe, fits=1)
        fits = [fit_attention(name, layer, acts, y, seed + k, stats, one, pairs) for k in range(recipe.fits)]
        return merge_heads(fits)
    d_model, queries = acts[0].shape[1], recipe.queries
    head = AttentionPoolHead(AttentionPoolConfig(name=name, layer=layer, labels=(name,), heads=queries), d_model)
    head.set_standardisation(*stats)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # nn.Linear's scale: queries start near uniform attention, values near zero scores
        head.query.copy_((torch.rand(queries, d_model, generator=gen) * 2 - 1) / d_model**0.5)
        head.value.copy_((torch.rand(queries, d_model, generator=gen) * 2 - 1) / d_model**0.5)
    head.weight.requires_grad_(False)  # stays ones: the values carry the scale (Platt scaling sets it afterwards)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    positive_weight = float((y == 0).sum()) / max(float((y == 1).sum()), 1.0)
    targets = torch.from_numpy(y.astype(np.float32))
    rows = length_batches(np.array([len(a) for a in acts]), BATCH)
    batches = [(as_activations(layer, *pad_batch([acts[i] for i in r])), targets[r]) for r in rows]
    n_bce = len(batches)
    if recipe.pair_weight > 0 and pairs is not None and len(pairs):
        # each batch: BATCH // 2 pairs, harmful rows first then their twins in the same order
        for start in range(0, len(pairs), BATCH // 2):
            chunk = pairs[start : start + BATCH // 2]
            order = np.concatenate([chunk[:, 0], chunk[:, 1]])
            batches.append((as_activations(layer, *pad_batch([acts[i] for i in order])), targets[order]))
    rng = np.random.default_rng(seed)
    for _ in range(recipe.epochs):
        for b in rng.permutation(len(batches)):
            batch, t = batches[b]
            logits = head(batch)[:, 0]  # [batch]
            if b >= n_bce:  # a batch of pairs: rank each harmful request above its benign twin
                half = len(t) // 2
                loss = recipe.pair_weight * torch.nn.functional.softplus(logits[half:] - logits[:half]).mean()
            else:
                weight = torch.where(t == 1, torch.tensor(positive_weight), torch.tensor(1.0))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.weight.requires_grad_(True)
    return head.eval()


def merge_heads(heads: Sequence[AttentionPoolHead]) -> AttentionPoolHead:
    """One head whose logit is the sum of `heads`' logits (K x their mean: Platt scaling absorbs the K): queries,
    values and their weights side by side, biases summed. The heads must share layer, labels and standardisation."""
    first = heads[0]
    for h in heads[1:]:
        same = (h.config.layer, h.config.labels) == (first.config.layer, first.config.labels)
        if not same or not (torch.equal(h.center, first.center) and torch.equal(h.scale, first.scale)):
            raise ValueError("merge_heads: heads differ in layer, labels or standardisation")
    config = dataclasses.replace(first.config, heads=sum(h.config.heads for h in heads))
    merged = AttentionPoolHead(config, first.center.numel())
    merged.set_standardisation(first.center, first.scale)
    with torch.no_grad():
        for name in ("query", "query_bias", "value"):
            getattr(merged, name).copy_(torch.cat([getattr(h, name) for h in heads]))
        merged.weight.copy_(torch.cat([h.weight for h in heads], dim=1))  # [labels, total heads]
        merged.bias.copy_(torch.stack([h.bias for h in heads]).sum(dim=0))
    return merged.eval()


def attention_scores(head: AttentionPoolHead, acts: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
    """[n] text logits of `head` (first label), batched by length."""
    out = np.empty(len(acts), dtype=np.float64)
    with torch.no_grad():
        for rows in length_batches(np.array([len(a) for a in acts]), batch_size):
            h, mask = pad_batch([acts[i] for i in rows])
            out[rows] = head(as_activations(head.config.layer, h, mask))[:, 0].double().numpy()
    return out


def loso_attention(
    data: Sequence[TokenSource],
    target_fpr: float,
    seed: int,
    per_kind: bool,
    recipe: AttentionRecipe = DEFAULT_RECIPE,
    families: Collection[str] | None = None,
) -> dict[str, dict]:
    """`fit.loso_table` for attention-pooled heads; every fold standardises with the kept negatives' statistics.
    `families`: hold out only these (`fit.loso_table`)."""
    negatives, _, keep, _ = negative_split(data, seed)
    neg_acts = [a for p in negatives for a in p.acts]
    stats = standardisation([neg_acts[i] for i in keep])

    def fit_model(others: list[TokenSource], negatives: list[np.ndarray]) -> AttentionPoolHead:
        acts = [a for p in others for a in p.acts] + negatives
        y = np.concatenate([p.y for p in others] + [np.zeros(len(negatives))])
        return fit_attention("loso", 0, acts, y, seed, stats, recipe, twin_pairs(others))  # 0 only names the layer

    return loso_table(data, lambda p: list(p.acts), fit_model, attention_scores, target_fpr, seed, per_kind, families)


def fit_attention_category(
    name: str,
    layer: int,
    data: Sequence[TokenSource],
    target_fpr: float,
    seed: int,
    per_kind: bool,
    recipe: AttentionRecipe = DEFAULT_RECIPE,
) -> tuple[AttentionPoolHead, float, dict[str, float]]:
    """The served head: fitted on every source's train part; Platt scaling (folded into `weight`, `bias`) and the
    threshold at `target_fpr` on the negatives from out-of-fold scores of every train text (`fit.out_of_fold`)."""
    acts = [a for part in data for a in part.acts]  # [n] of [seq, d_model]
    y = np.concatenate([part.y for part in data])
    negative, kinds = row_roles(data)
    stats = standardisation([a for a, n in zip(acts, negative, strict=True) if n])  # ordinary negatives' tokens
    pairs = twin_pairs(data)

    def fit_score(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        kept = _pairs_within(pairs, train_rows)
        head = fit_attention(name, layer, [acts[i] for i in train_rows], y[train_rows], seed, stats, recipe, kept)
        return attention_scores(head, [acts[i] for i in test_rows])

    oof = out_of_fold(y, seed, fit_score)
    head = fit_attention(name, layer, acts, y, seed, stats, recipe, pairs)
    w = head.weight.detach().numpy()[0].astype(np.float64)  # [heads] ones
    threshold, info = calibrate_category(head, w, float(head.bias.detach()[0]), oof, y, negative, kinds, target_fpr,
                                         per_kind)  # fmt: skip
    fitted = {"attention_fits": recipe.fits, "attention_queries": recipe.queries, "pair_weight": recipe.pair_weight,
              "twin_pairs": len(pairs)}  # fmt: skip
    return head, threshold, {**info, **fitted}
