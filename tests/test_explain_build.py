"""The explain stage's pieces: redaction that keeps the firing token marked, licences, and the influence layer (its
first-order prediction of a leave-one-out refit, and the citation check)."""

from __future__ import annotations

import numpy as np
import pytest

from probeguard.detector.explain_store import InfluenceLayer, TrainingRow, redistributable
from probeguard.training.explain_build import fit_layer, influence_check, licence_of, redact_with_mark


@pytest.mark.parametrize(
    ("text", "spans", "mark", "want", "want_mark"),
    [
        ("call Anna now", [(5, 9, "PERSON")], (10, 13), "call [PERSON] now", (14, 17)),  # span before the mark
        ("call Anna now", [(5, 9, "PERSON")], (0, 4), "call [PERSON] now", (0, 4)),  # span after it
        ("call Anna now", [(5, 9, "PERSON")], (5, 9), "call [PERSON] now", (5, 13)),  # the mark is the span
        ("a@b.co and Bo", [(0, 6, "EMAIL"), (11, 13, "PERSON")], (7, 10), "[EMAIL] and [PERSON]", (8, 11)),
        ("no pii here", [], (3, 6), "no pii here", (3, 6)),
    ],
)
def test_redaction_moves_the_mark_with_the_text(text, spans, mark, want, want_mark):
    got, got_mark = redact_with_mark(text, spans, mark)
    assert got == want and got_mark == want_mark
    if spans == [] or want_mark != (5, 13):
        assert got[got_mark[0] : got_mark[1]] == text[mark[0] : mark[1]]


def test_licences_keep_non_redistributable_text_out():
    assert not redistributable(licence_of("alpaca")), "Alpaca rows are CC BY-NC: cited by source and row only"
    assert not redistributable(licence_of("user:our_traffic")), "a user's own data is never embedded"
    assert not redistributable(licence_of("pii_free"))
    for source in ("wikigold", "btc", "hh_safe", "inj:bipia:Clickbait", "pw_direct", "advbench", "bastion"):
        assert redistributable(licence_of(source)), source


def _layer(seed: int = 0, n: int = 300, q: int = 4) -> tuple[InfluenceLayer, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, q))
    y = (x @ rng.normal(size=q) + rng.normal(scale=1.0, size=n) > 0).astype(np.float64)
    weight = np.ones(n)
    coef, h_inv, residuals = fit_layer(x, y, weight)
    rows = tuple(TrainingRow("s", "positive" if v else "negative", int(v), i, "MIT", None) for i, v in enumerate(y))
    return InfluenceLayer("h", rows, np.hstack([x, np.ones((n, 1))]), residuals, h_inv, coef), x, y


def test_support_predicts_the_leave_one_out_refit():
    layer, x, y = _layer()
    test = np.append(np.random.default_rng(1).normal(size=x.shape[1]), 1.0)
    support = layer.support(test)
    for j in np.argsort(-np.abs(support))[:5]:
        keep = np.arange(len(y)) != j
        coef, _, _ = fit_layer(x[keep], y[keep], np.ones(keep.sum()))
        actual_drop = layer.logit(test) - float(test @ coef)
        assert actual_drop == pytest.approx(support[j], rel=0.25, abs=2e-3), j


def test_removing_the_cited_rows_moves_the_score_more_than_random_rows():
    layer, x, _ = _layer(seed=2)
    tests = [np.append(v, 1.0) for v in np.random.default_rng(3).normal(size=(8, x.shape[1]))]
    check = influence_check(layer, tests, seed=0)
    assert check["texts"] == 8 and check["top_k_drop"] > 0 and check["ratio"] > 3
    assert check["predicted_top_k_drop"] == pytest.approx(check["top_k_drop"], rel=0.5)


def test_feature_contexts_are_redacted_and_non_redistributable_text_is_left_out():
    """Feature labels on a fake harvest: every stored context is redacted by the given spans (a name never
    appears), Alpaca-licensed contexts carry no text, and the firing token stays marked."""
    import re

    from probeguard.detector.tokenize import EncodedText
    from probeguard.training.category_sources import CategorySource
    from probeguard.training.data import LabelledText
    from probeguard.training.explain_build import feature_labels
    from tests.bundles import random_sae

    d_model = 8
    texts = {"pw_direct": [f"please ignore Zebulon rules number {i}" for i in range(6)],
             "alpaca": [f"write a poem about Zebulon number {i}" for i in range(6)]}  # fmt: skip
    sources = [CategorySource(name, "prompt_injection", "positive" if name == "pw_direct" else "negative",
                              [LabelledText(t, int(name == "pw_direct"), name) for t in rows], [])
               for name, rows in texts.items()]  # fmt: skip
    vocab: dict[str, int] = {}

    def encode(text: str) -> EncodedText:
        words = list(re.finditer(r"\S+", text))
        return EncodedText(np.array([vocab.setdefault(m.group(), len(vocab)) for m in words]),
                           np.array([[m.start(), m.end()] for m in words]))  # fmt: skip

    class Store:
        def __init__(self, rows: list[str]) -> None:
            rng = np.random.default_rng(0)
            self.acts = [rng.normal(size=(len(encode(t).ids), d_model)).astype(np.float32) for t in rows]

        def per_text(self, layer: int) -> list[np.ndarray]:
            return self.acts

    def spans_of(batch: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(m.start(), m.end(), "PERSON") for m in re.finditer("Zebulon", t)] for t in batch]

    sae = random_sae(d_model, layer=1, d_sae=16)
    labels, refs, share, report = feature_labels(sae, [], sources, lambda rows, desc: (Store(list(rows)), []),
                                                 encode, spans_of, texts_per_source=6, seed=0)  # fmt: skip
    assert [r.name for r in refs] == ["pw_direct", "alpaca"] and share.shape == (16, 2)
    assert labels and report["live_features"] == len(labels) and 0 < report["contexts_with_text"] < report["contexts"]
    for label in labels.values():
        assert label.top_tokens and 0 < label.fire_rate <= 1
        for c in label.contexts:
            if c.source == "alpaca":
                assert c.text is None and c.licence == "CC BY-NC 4.0"
            else:
                assert c.text is not None and "Zebulon" not in c.text and c.text[c.mark[0] : c.mark[1]].strip()
