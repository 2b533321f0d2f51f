"""The bundle's explain artifacts (detector.explain_store), built from the training run's cached activations:

- **feature labels**: on the SAE's own sample of train-part texts (every source, never a dev part), each live feature's
  most frequent firing tokens, its top-activating contexts (a window of CONTEXT_TOKENS tokens either side, the firing
  token marked, redacted by the bundle's own PII spans; no text from a source whose licence forbids redistributing
  it) and, per source, the share of its rows where it fires;
- **influence layers**: per category, an L2 logistic model refitted on the attention head's per-query pooled values
  of its training rows (every role), its inverse Hessian and residuals, and the rows' metadata with redacted
  snippets; checked against the served score and validated by leave-top-k-out refits (removing the top-k cited rows
  must move a flagged text's score more than removing k random rows).

    python -m probeguard.training.explain_build --bundle models/probeguard-base/0.13.0   # adds them to a bundle
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_sample_weight

from probeguard.detector.explain import attention_logit_parts
from probeguard.detector.explain_store import (
    Context,
    FeatureLabel,
    InfluenceLayer,
    SourceRef,
    TrainingRow,
    redistributable,
)
from probeguard.detector.explanation import pooled_values
from probeguard.detector.heads.attention import AttentionPoolHead
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.tokenize import EncodedText
from probeguard.training.category_sources import CategorySource
from probeguard.training.pii_sources import SpanSource
from probeguard.training.sae_data import sample_per_source, source_pools

CONTEXTS = 5  # top contexts kept per feature (distinct texts)
CONTEXT_TOKENS = 10  # tokens either side of the firing token
TOP_TOKENS = 8
SNIPPET_CHARS = 200
REFIT_C = 1.0  # L2 strength of the influence layer (sklearn's C: inverse regularisation)
CHECK_K = 10  # rows removed in the influence check

Redact = Callable[[list[str]], list[str]]  # texts -> the same texts with the bundle's PII spans replaced


def licence_of(source: str) -> str:
    """The licence of a training source's text (../shared/data/README.md; project-written text is the project's)."""
    if source in ("wikigold", "btc", "wnut17"):
        return "CC BY 4.0"
    if source == "alpaca":
        return "CC BY-NC 4.0"
    if source in ("advbench", "harmbench_val"):
        return "Apache-2.0"  # as sampled by andyrdt/refusal_direction
    if source.startswith(("hh_", "inj:", "bastion")) or source == "documents":
        return "MIT"  # hh-rlhf, BIPIA (carrier documents and attacks), bastioncorpus
    if source.startswith("pw_") or source in ("business", "synthetic", "pii_messages"):
        return "project-written"
    if source == "pii_free":
        return "third-party code (PSF and package licences)"
    return "unknown"  # a user's own data: cited by source and row only


def redact_with_mark(text: str, spans: Sequence[tuple[int, int, str]], mark: tuple[int, int]) -> tuple[str, tuple]:
    """Replace each span by [LABEL]; the mark follows (a span over the mark becomes the mark)."""
    out, at, new_mark = [], 0, list(mark)
    shift = 0
    for start, end, label in sorted(spans):
        if start < at:
            continue
        out.append(text[at:start])
        repl = f"[{label}]"
        if start < mark[1] and end > mark[0]:
            new_mark = [start + shift, start + shift + len(repl)]
        elif end <= mark[0]:
            new_mark = [new_mark[0] + len(repl) - (end - start), new_mark[1] + len(repl) - (end - start)]
        out.append(repl)
        shift += len(repl) - (end - start)
        at = end
    out.append(text[at:])
    return "".join(out), (new_mark[0], new_mark[1])


# -- feature labels ---------------------------------------------------------------------------------------------------
def feature_labels(
    sae: SparseAutoencoder,
    pii: Sequence[SpanSource],
    categories: Sequence[CategorySource],
    harvest: Callable,
    encode: Callable[[str], EncodedText],
    spans_of: Callable[[list[str]], list[list[tuple[int, int, str]]]],
    texts_per_source: int,
    seed: int,
) -> tuple[dict[int, FeatureLabel], tuple[SourceRef, ...], np.ndarray, dict]:
    layer, d_sae = sae.config.layer, sae.config.d_sae
    all_pools = source_pools(pii, categories)
    all_refs = [SourceRef(s.name, "pii", "text") for s in pii] + [SourceRef(s.name, s.category, s.role)
                                                                 for s in categories]  # fmt: skip
    sampled = sample_per_source(all_pools, texts_per_source, random.Random(f"sae/{seed}"))
    kept = [p for p, rows in enumerate(sampled) if rows]  # a pool whose texts an earlier pool took has no column
    pools, refs, picked = [all_pools[p] for p in kept], tuple(all_refs[p] for p in kept), [sampled[p] for p in kept]
    fire_share = np.zeros((d_sae, len(pools)), dtype=np.float32)
    feats, acts_all, texts_idx, toks = [], [], [], []
    text_meta: list[tuple[int, int, str]] = []  # (pool, row, text)
    token_text: dict[int, str] = {}
    token_ids: list[np.ndarray] = []
    total = 0
    for p, (pool, rows) in enumerate(zip(pools, picked, strict=True)):
        per_text = harvest(pool, "activations for feature labels")[0].per_text(layer)
        fired_rows = np.zeros(d_sae, dtype=np.int64)
        for i in rows:
            acts = torch.from_numpy(np.array(per_text[i], dtype=np.float32))  # [n, d_model]
            enc = encode(pool[i])
            n = min(len(acts), len(enc.ids))
            with torch.no_grad():
                codes = sae.encode(acts[:n])  # [n, d_sae]
            tok, feat = torch.nonzero(codes > 0, as_tuple=True)
            t = len(text_meta)
            text_meta.append((p, i, pool[i]))
            feats.append(feat.numpy().astype(np.int32))
            acts_all.append(codes[tok, feat].numpy().astype(np.float32))
            texts_idx.append(np.full(len(tok), t, dtype=np.int32))
            toks.append(tok.numpy().astype(np.int32))
            ids = np.asarray(enc.ids[:n])
            token_ids.append(ids[tok.numpy()])
            for j in np.unique(tok.numpy()):
                token_text.setdefault(int(ids[j]), pool[i][enc.offsets[j][0] : enc.offsets[j][1]])
            fired_rows[np.unique(feat.numpy())] += 1
            total += n
        fire_share[:, p] = fired_rows / len(rows)
    feat = np.concatenate(feats)
    value = np.concatenate(acts_all)
    text = np.concatenate(texts_idx)
    tok = np.concatenate(toks)
    tid = np.concatenate(token_ids)
    order = np.lexsort((-value, feat))  # by feature, strongest first
    feat, value, text, tok, tid = feat[order], value[order], text[order], tok[order], tid[order]
    bounds = np.searchsorted(feat, np.arange(d_sae + 1))
    chosen: dict[int, list[tuple[int, int, float]]] = {}
    top_tokens: dict[int, tuple[tuple[str, int], ...]] = {}
    rate: dict[int, float] = {}
    for f in range(d_sae):
        lo, hi = bounds[f], bounds[f + 1]
        if lo == hi:
            continue
        seen, picks = set(), []
        for j in range(lo, hi):
            if int(text[j]) not in seen:
                seen.add(int(text[j]))
                picks.append((int(text[j]), int(tok[j]), float(value[j])))
                if len(picks) == CONTEXTS:
                    break
        chosen[f] = picks
        counts = Counter(tid[lo:hi].tolist()).most_common(TOP_TOKENS)
        top_tokens[f] = tuple((token_text.get(int(k), "?"), int(c)) for k, c in counts)
        rate[f] = (hi - lo) / max(total, 1)
    windows: list[tuple[int, str, tuple[int, int]]] = []  # (feature, window text, mark) for redistributable texts
    for f, picks in chosen.items():
        for t, j, _ in picks:
            p, _, body = text_meta[t]
            if redistributable(licence_of(refs[p].name)):
                enc = encode(body)
                a, b = max(0, j - CONTEXT_TOKENS), min(len(enc.ids) - 1, j + CONTEXT_TOKENS)
                lo_c, hi_c = int(enc.offsets[a][0]), int(enc.offsets[b][1])
                windows.append((f, body[lo_c:hi_c], (int(enc.offsets[j][0]) - lo_c, int(enc.offsets[j][1]) - lo_c)))
    spans = spans_of([w for _, w, _ in windows])
    redacted = iter(redact_with_mark(w, s, m) for (_, w, m), s in zip(windows, spans, strict=True))
    labels = {}
    for f, picks in chosen.items():
        contexts = []
        for t, _, v in picks:
            p, row, _ = text_meta[t]
            licence = licence_of(refs[p].name)
            body, mark = next(redacted) if redistributable(licence) else (None, (0, 0))
            contexts.append(Context(refs[p].name, row, licence, body, mark, round(v, 4)))
        labels[f] = FeatureLabel(f, top_tokens[f], tuple(contexts), round(rate[f], 6))
    report = {"texts": len(text_meta), "tokens": total, "live_features": len(labels), "d_sae": d_sae,
              "contexts": sum(len(v.contexts) for v in labels.values()),
              "contexts_with_text": sum(c.text is not None for v in labels.values() for c in v.contexts)}  # fmt: skip
    return labels, refs, fire_share, report


# -- influence ------------------------------------------------------------------------------------------------------
def pooled_of(head: AttentionPoolHead, acts: np.ndarray) -> np.ndarray:
    """[queries] the head's per-query pooled values on one text's activations [n, d_model] (all text tokens): the
    explanation's own `pooled_values`, with the attention the head puts on them."""
    h = torch.from_numpy(np.array(acts, dtype=np.float32))
    attention = attention_logit_parts(head, h, torch.ones(len(h), dtype=torch.bool)).attention  # [n, queries]
    return pooled_values(head, h, attention)


def fit_layer(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef [q + 1] with the intercept last, inverse Hessian [q + 1, q + 1], residuals [n] = weight (y - p))."""
    model = LogisticRegression(C=REFIT_C, max_iter=2000)
    model.fit(x, y, sample_weight=weight)
    coef = np.append(model.coef_[0], model.intercept_[0])
    xt = np.hstack([x, np.ones((len(x), 1))])
    p = 1.0 / (1.0 + np.exp(-(xt @ coef)))
    reg = np.eye(xt.shape[1]) / REFIT_C
    reg[-1, -1] = 0.0  # the intercept is not penalised
    hessian = (xt * (weight * p * (1 - p))[:, None]).T @ xt + reg
    return coef, np.linalg.inv(hessian), weight * (y - p)


def influence_layer(
    category: str,
    head: AttentionPoolHead,
    sources: Sequence[CategorySource],
    harvest: Callable,
    redact: Redact,
) -> InfluenceLayer:
    rows: list[TrainingRow] = []
    pooled: list[np.ndarray] = []
    snippets: list[tuple[int, str]] = []
    for s in sources:
        if s.category != category or not s.train:
            continue
        per_text = harvest([r.text for r in s.train], f"activations for {category}'s influence layer")[0].per_text(
            head.config.layer
        )
        licence = licence_of(s.name)
        for i, (r, acts) in enumerate(zip(s.train, per_text, strict=True)):
            if len(acts) == 0:
                continue
            if redistributable(licence):
                snippets.append((len(rows), r.text[:SNIPPET_CHARS]))
            rows.append(TrainingRow(s.name, s.role, int(r.label), i, licence, None))
            pooled.append(pooled_of(head, acts))
    redacted = redact([t for _, t in snippets])
    for (j, _), text in zip(snippets, redacted, strict=True):
        rows[j] = dataclasses.replace(rows[j], snippet=text)
    x = np.stack(pooled)  # [n, queries]
    y = np.array([r.label for r in rows], dtype=np.float64)
    coef, h_inv, residuals = fit_layer(x, y, compute_sample_weight("balanced", y))
    return InfluenceLayer(head.config.name, tuple(rows), np.hstack([x, np.ones((len(x), 1))]), residuals, h_inv, coef)


def influence_check(layer: InfluenceLayer, tests: Sequence[np.ndarray], seed: int) -> dict[str, float]:
    """For each test point (pooled values + 1 of a flagged dev text): refit without its top-CHECK_K supporting rows
    and without CHECK_K random rows; the mean logit drops and their ratio."""
    rng = np.random.default_rng(seed)
    x, y = layer.features[:, :-1], np.array([r.label for r in layer.rows], dtype=np.float64)
    weight = compute_sample_weight("balanced", y)
    top_drops, random_drops, predicted = [], [], []
    for t in tests:
        base = layer.logit(t)
        support = layer.support(t)
        for chosen, out in ((np.argsort(-support)[:CHECK_K], top_drops),
                            (rng.choice(len(y), CHECK_K, replace=False), random_drops)):  # fmt: skip
            keep = np.ones(len(y), dtype=bool)
            keep[chosen] = False
            coef, _, _ = fit_layer(x[keep], y[keep], weight[keep])
            out.append(base - float(t @ coef))
        predicted.append(float(support[np.argsort(-support)[:CHECK_K]].sum()))
    top, rand = float(np.mean(top_drops)), float(np.mean(random_drops))
    return {"texts": len(tests), "k": CHECK_K, "top_k_drop": round(top, 4), "random_k_drop": round(rand, 4),
            "ratio": round(top / abs(rand), 1) if rand else float("inf"),
            "predicted_top_k_drop": round(float(np.mean(predicted)), 4)}  # fmt: skip
