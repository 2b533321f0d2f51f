"""Attention-pooled sequence head: the served forward, its masking, and its torch fit on per-token activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.heads import AttentionPoolConfig, AttentionPoolHead, build_head
from probeguard.training.attention_select import (
    AttentionRecipe,
    TokenSource,
    attention_scores,
    fit_attention,
    fit_attention_category,
    loso_attention,
    merge_heads,
    twin_pairs,
)
from probeguard.training.category_sources import CategorySource, contrast_pairs
from probeguard.training.data import LabelledText
from probeguard.training.fit import loso_table

D = 8
RECIPE = AttentionRecipe(epochs=80)  # a few hundred texts: 5 steps an epoch, so more epochs than on real data


def _random_head(seed: int = 0, labels: tuple[str, ...] = ("unsafe",)) -> AttentionPoolHead:
    torch.manual_seed(seed)
    head = AttentionPoolHead(AttentionPoolConfig(name="unsafe", layer=1, labels=labels, heads=3), D)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, 0.5)
        head.set_standardisation(torch.randn(D), torch.rand(D) + 0.5)
    return head.eval()


def _acts(rows: list[np.ndarray], seq: int, pad: float = 99.0) -> Activations:
    h = torch.full((len(rows), seq, D), pad)
    mask = torch.zeros(len(rows), seq, dtype=torch.bool)
    for i, a in enumerate(rows):
        h[i, : len(a)], mask[i, : len(a)] = torch.from_numpy(a), True
    return Activations(layers={1: h}, attention_mask=mask, content_mask=mask)


@pytest.mark.parametrize("heads", [0, 65, True, 2.0])
def test_config_rejects_bad_query_counts(heads):
    with pytest.raises(ConfigError, match="heads must be"):
        AttentionPoolConfig(name="unsafe", layer=1, labels=("unsafe",), heads=heads)


def test_forward_is_softmax_weighted_token_scores_and_ignores_padding():
    head = _random_head(labels=("unsafe", "other"))
    rng = np.random.default_rng(0)
    texts = [rng.normal(size=(n, D)).astype(np.float32) for n in (1, 5, 12)]
    with torch.no_grad():
        batched = head(_acts(texts, 16)).numpy()  # [3, labels]; padding rows hold 99s
        single = [head(_acts([t], len(t))).numpy()[0] for t in texts]
    p = {k: v.detach().numpy().astype(np.float64) for k, v in head.state_dict().items()}
    for text, got, alone in zip(texts, batched, single, strict=True):
        z = (text - p["center"]) * p["scale"]  # [n, d]
        a = z @ p["query"].T + p["query_bias"]  # [n, heads]
        a = np.exp(a - a.max(axis=0))
        a /= a.sum(axis=0)
        expected = p["weight"] @ (a * (z @ p["value"].T)).sum(axis=0) + p["bias"]  # [labels]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(alone, got, rtol=1e-5, atol=1e-5)


def test_a_text_without_content_tokens_scores_the_bias():
    head = _random_head()
    acts = _acts([np.zeros((0, D), dtype=np.float32)], 4)
    with torch.no_grad():
        assert float(head(acts)[0, 0]) == pytest.approx(float(head.bias[0]))


def test_registered_and_built_from_its_config():
    config = AttentionPoolConfig(name="unsafe", layer=2, labels=("unsafe",))
    assert isinstance(build_head(config, D), AttentionPoolHead)
    assert AttentionPoolHead.type_name == "attention_pool_linear"


def test_merged_heads_score_the_sum_of_their_scores():
    heads = [_random_head(seed) for seed in range(3)]
    for h in heads[1:]:
        h.set_standardisation(heads[0].center, heads[0].scale)
    merged = merge_heads(heads)
    assert merged.config.heads == 9 and merged.weight.shape == (1, 9)
    rng = np.random.default_rng(1)
    acts = _acts([rng.normal(size=(n, D)).astype(np.float32) for n in (1, 4, 10)], 12)
    with torch.no_grad():
        expected = sum(h(acts) for h in heads)
        np.testing.assert_allclose(merged(acts).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    other = _random_head(7)  # its own standardisation
    with pytest.raises(ValueError, match="standardisation"):
        merge_heads([heads[0], other])


def test_more_fits_are_the_fits_of_the_next_seeds_side_by_side():
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(int(rng.integers(3, 9)), D)).astype(np.float32) for _ in range(40)]
    y = np.arange(40) % 2
    stats = (torch.zeros(D), torch.ones(D))
    plain = fit_attention("unsafe", 1, acts, y, 5, stats, AttentionRecipe(epochs=2))
    two = fit_attention("unsafe", 1, acts, y, 5, stats, AttentionRecipe(epochs=2, fits=2))
    next_seed = fit_attention("unsafe", 1, acts, y, 6, stats, AttentionRecipe(epochs=2))
    assert two.config.heads == 2 * plain.config.heads
    assert torch.equal(two.query[: plain.config.heads], plain.query)
    assert torch.equal(two.query[plain.config.heads :], next_seed.query)


def test_queries_set_the_served_heads_width_and_each_fit_keeps_them():
    rng = np.random.default_rng(1)
    acts = [rng.normal(size=(int(rng.integers(3, 9)), D)).astype(np.float32) for _ in range(30)]
    y = np.arange(30) % 2
    stats = (torch.zeros(D), torch.ones(D))
    wide = fit_attention("unsafe", 1, acts, y, 0, stats, AttentionRecipe(epochs=1, queries=16))
    assert wide.config.heads == 16 and wide.query.shape == (16, D) and wide.weight.shape == (1, 16)
    merged = fit_attention("unsafe", 1, acts, y, 0, stats, AttentionRecipe(epochs=1, fits=2, queries=3))
    assert merged.config.heads == 6
    rebuilt = build_head(merged.config, D)  # what a bundle loads: the width travels in the head's config
    rebuilt.load_state_dict(merged.state_dict())
    assert np.allclose(attention_scores(rebuilt.eval(), acts[:5]), attention_scores(merged, acts[:5]))


@pytest.mark.parametrize("field", ["epochs", "fits", "queries"])
@pytest.mark.parametrize("value", [0, -1, 2.0])
def test_recipe_refuses_non_positive_or_non_integer_values(field, value):
    with pytest.raises(ValueError, match=f"AttentionRecipe.{field}"):
        AttentionRecipe(**{field: value})


@pytest.mark.parametrize("value", [-0.5, 101.0, "1"])
def test_recipe_refuses_a_pair_weight_outside_its_range(value):
    with pytest.raises(ValueError, match=r"AttentionRecipe\.pair_weight"):
        AttentionRecipe(pair_weight=value)


def _pair_part(name: str, role: str, rows: list[LabelledText]) -> TokenSource:
    acts = [np.zeros((2, D), dtype=np.float32) for _ in rows]
    return TokenSource(CategorySource(name, "unsafe", role, rows, []), acts, np.array([r.label for r in rows]))


def test_twin_pairs_index_both_twins_across_parts_and_skip_lone_rows():
    harm = _pair_part("h", "positive", [LabelledText("a", 1, "h", "pair/1"), LabelledText("b", 1, "h", "pair/2"),
                                        LabelledText("c", 1, "h")])  # fmt: skip
    other = _pair_part("x", "positive", [LabelledText("d", 1, "x")])
    benign = _pair_part("b", "lookalike", [LabelledText("e", 0, "b", "pair/2"), LabelledText("f", 0, "b", "pair/9")])
    # rows in order: a b c | d | e f -> pair/2 is (1, 4); pair/1 and pair/9 have no twin in the fit
    assert twin_pairs([harm, other, benign]).tolist() == [[1, 4]]
    assert twin_pairs([other]).shape == (0, 2)


def test_shipped_pair_sets_keep_twins_on_the_same_side_of_the_split():
    harm, benign = contrast_pairs("contrast_pairs_d.jsonl")
    pairs = twin_pairs([_pair_part(p.name, p.role, p.train) for p in (harm, benign)])
    assert len(pairs) == len(harm.train) == len(benign.train)  # every train request has its twin in train
    rows = harm.train + benign.train
    assert all(rows[i].label == 1 and rows[j].label == 0 and rows[i].pair == rows[j].pair for i, j in pairs)
    assert not {r.pair for r in harm.dev} & {r.pair for r in harm.train}


def test_pair_loss_ranks_each_request_above_its_twin_where_bce_cannot_tell_them_apart():
    """Harmful and benign twins share a loud topic direction; only a faint direction tells them apart, and ordinary
    negatives lack the topic. BCE alone ranks by topic; the pair loss learns the faint direction."""
    rng = np.random.default_rng(0)
    topic, intent = np.eye(D, dtype=np.float32)[0] * 3, np.eye(D, dtype=np.float32)[1]

    def text(*shift: np.ndarray) -> np.ndarray:
        return (rng.normal(size=(6, D)) + sum(shift)).astype(np.float32)

    n = 150
    acts = [text(topic, intent) for _ in range(n)] + [text(topic) for _ in range(n)] + [text() for _ in range(2 * n)]
    y = np.r_[np.ones(n), np.zeros(3 * n)].astype(int)
    pairs = np.stack([np.arange(n), np.arange(n, 2 * n)], axis=1)  # request i and its twin n + i
    stats = (torch.zeros(D), torch.ones(D))
    fresh = [text(topic, intent) for _ in range(50)] + [text(topic) for _ in range(50)]

    def twin_auroc(recipe: AttentionRecipe) -> float:
        head = fit_attention("unsafe", 1, acts, y, 0, stats, recipe, pairs)
        return roc_auc_score(np.r_[np.ones(50), np.zeros(50)], attention_scores(head, fresh))

    plain, paired = twin_auroc(AttentionRecipe(epochs=30)), twin_auroc(AttentionRecipe(epochs=30, pair_weight=3.0))
    assert paired > 0.75 and paired > plain + 0.15


def _texts(rng: np.random.Generator, n: int, signal: bool, direction: np.ndarray) -> list[np.ndarray]:
    """Documents of 100-300 noise tokens; a positive has a 3-token instruction somewhere inside."""
    out = []
    for _ in range(n):
        a = rng.normal(size=(int(rng.integers(100, 300)), D)).astype(np.float32)
        if signal:
            at = int(rng.integers(0, len(a) - 3))
            a[at : at + 3] += 3.5 * direction
        out.append(a)
    return out


@pytest.mark.slow
def test_attention_finds_a_short_instruction_that_mean_pooling_dilutes():
    rng = np.random.default_rng(0)
    direction = (rng.normal(size=D) / np.sqrt(D)).astype(np.float32) * 2

    def part(name: str, role: str, acts: list[np.ndarray]) -> TokenSource:
        src = CategorySource(name, "prompt_injection", role, [], [])
        return TokenSource(src, acts, np.full(len(acts), int(role == "positive")))

    data = [part(f"inj{i}", "positive", _texts(rng, 60, True, direction)) for i in range(3)]
    data += [part("docs", "negative", _texts(rng, 200, False, direction)),
             part("mail", "negative", _texts(rng, 100, False, direction))]  # fmt: skip
    result = loso_attention(data, target_fpr=0.05, seed=0, per_kind=True, recipe=RECIPE)
    assert min(r["auroc"] for r in result.values()) > 0.95 and min(r["recall"] for r in result.values()) > 0.6
    # mean pooling on the same held-out split cannot see a 3-token run in ~200 tokens of noise
    x = np.stack([a.mean(axis=0) for p in data for a in p.acts])
    y = np.concatenate([p.y for p in data])
    test = np.arange(len(y)) < 60  # inj0 held out, fitted on the rest
    mean_clf = LogisticRegression(class_weight="balanced").fit(x[~test], y[~test])
    negatives = y == 0
    mean_auroc = roc_auc_score(np.r_[np.ones(60), np.zeros(negatives.sum())],
                               mean_clf.decision_function(np.r_[x[test], x[negatives]]))  # fmt: skip
    assert mean_auroc < 0.8 < result["inj0"]["auroc"]
    partial = loso_attention(data, target_fpr=0.05, seed=0, per_kind=True, recipe=RECIPE, families={"inj0"})
    assert partial == {"inj0": result["inj0"]}  # the same fold, the others skipped

    head, threshold, info = fit_attention_category("prompt_injection", 1, data, 0.05, seed=0, per_kind=True,
                                                       recipe=RECIPE)  # fmt: skip
    assert info["calibration_auroc"] > 0.95 and 0 < threshold < 1
    fresh_pos, fresh_neg = _texts(rng, 40, True, direction), _texts(rng, 40, False, direction)
    probs = 1 / (1 + np.exp(-attention_scores(head, fresh_pos + fresh_neg)))  # Platt folded into the served head
    assert (probs[:40] >= threshold).mean() > 0.8 and (probs[40:] >= threshold).mean() < 0.2


def test_loso_table_holds_out_only_the_families_asked_for():
    rng = np.random.default_rng(3)

    def part(name: str, role: str, family: str, shift: float) -> TokenSource:
        acts = [rng.normal(shift, 1.0, size=(4, D)).astype(np.float32) for _ in range(30)]
        src = CategorySource(name, "unsafe", role, [], [], family)
        return TokenSource(src, acts, np.full(30, int(role == "positive")))

    data = [part("a_harm", "positive", "a", 2.0), part("a_benign", "lookalike", "a", 1.0),
            part("b_harm", "positive", "b", 2.0), part("solo", "positive", "", 2.0),
            part("docs", "negative", "", 0.0), part("mail", "negative", "", 0.0)]  # fmt: skip
    fitted: list[set[str]] = []

    def fit(others: list[TokenSource], negatives: list[np.ndarray]) -> None:
        fitted.append({p.source.name for p in others})

    def score(_model: None, rows: list[np.ndarray]) -> np.ndarray:
        return np.array([float(r.mean()) for r in rows])

    table = loso_table(data, lambda p: list(p.acts), fit, score, 0.05, seed=0, per_kind=True, families={"a"})
    assert set(table) == {"a_harm", "a_benign"} and table["a_harm"]["auroc_twins"] > 0.9
    assert fitted == [{"b_harm", "solo"}] * 2  # one fold, two half-models, family a never fitted
    everything = loso_table(data, lambda p: list(p.acts), fit, score, 0.05, seed=0, per_kind=True)
    assert set(everything) == {"a_harm", "a_benign", "b_harm", "solo"}
