"""Why a text was flagged: the explanation object of one detection, built from the activations the served graph
returned for that text (its `layer_<k>` outputs, fetched only when explaining).

- A flagged category: its winning window (the text's score is the max over windows) split exactly into the head's
  bias, the SAE features' contributions, the SAE's offset and its error (detector.explain); the top features with
  their labels and where they fired, the top tokens, and the training rows behind the decision (influence through a
  refitted logistic layer over the head's per-query pooled values, and the nearest rows in that space).
- A PII span: gradient x (activation - the head's training mean) through the token head at the span's strongest
  token and its lookahead window, split over the SAE's features (first order: the parts approximate the logit's
  distance from the head's value at the training mean, they do not sum to the logit), and the validator that
  confirmed the span, where its label has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeguard.detector.activations import Activations
from probeguard.detector.errors import ConfigError
from probeguard.detector.explain import LogitParts, attention_logit_parts, sae_head_logit_parts, sparse_split
from probeguard.detector.explain_store import ExplainArtifacts, InfluenceLayer, redistributable
from probeguard.detector.heads import Head
from probeguard.detector.heads.attention import AttentionPoolHead
from probeguard.detector.heads.sae import SAEFeatureHead
from probeguard.detector.sae import SparseAutoencoder
from probeguard.detector.spans import Span
from probeguard.detector.tokenize import EncodedText, Window
from probeguard.detector.validators import DEFAULT_VALIDATORS

TOP_FEATURES = 5
TOP_TOKENS = 5
TOP_ROWS = 5
PLACES = 3  # character ranges listed per feature
SPAN_METHOD = ("gradient x (activation - training mean) through the token head at the span's strongest token and its "
               "lookahead window, split over SAE features (first order)")  # fmt: skip


class ExplainUnavailableError(ConfigError):
    """The served bundle cannot explain (no SAE, or a head the decomposition does not cover)."""


@dataclass(frozen=True)
class FeatureCite:
    id: int
    contribution: float  # its part of the logit
    label: str | None  # its most frequent firing tokens; None when the bundle stores no labels
    places: tuple[tuple[int, int], ...]  # character ranges of the tokens where it contributed most


@dataclass(frozen=True)
class TokenCite:
    start: int
    end: int
    contribution: float


@dataclass(frozen=True)
class RowCite:
    source: str
    role: str
    label: int
    row: int  # index into the source's train part
    licence: str
    snippet: str | None  # redacted; None when the licence forbids redistributing the text
    value: float  # support (logit drop if the row were removed) or distance, per list


@dataclass(frozen=True)
class CategoryExplanation:
    window: tuple[int, int]  # character range of the winning window
    logit: float  # the head's logit on that window: bias + features + other_features + sae_offset + sae_error
    bias: float
    features: tuple[FeatureCite, ...]  # the largest contributions, positive first
    other_features: float  # every other feature's contribution, summed
    sae_offset: float  # the SAE's decoder bias seen through the head
    sae_error: float  # what the SAE does not reconstruct, seen through the head
    tokens: tuple[TokenCite, ...]  # the tokens with the largest parts
    supporting_rows: tuple[RowCite, ...]  # training rows that pushed this score up most (influence)
    nearest_rows: tuple[RowCite, ...]  # training rows nearest in the head's pooled space
    refit_score: float | None  # the influence layer's score for this window (it approximates the served score)

    def parts_total(self) -> float:
        return self.bias + sum(f.contribution for f in self.features) + self.other_features + self.sae_offset + (
            self.sae_error)  # fmt: skip


@dataclass(frozen=True)
class SpanExplanation:
    label: str
    start: int
    end: int
    method: str
    features: tuple[FeatureCite, ...]
    sae_error: float  # the gradient seen through the SAE's error
    validator: str | None  # what confirmed the span, for labels with a validator


@dataclass(frozen=True)
class Explanation:
    categories: dict[str, CategoryExplanation]  # every category of the bundle (flagged or not)
    spans: tuple[SpanExplanation, ...]


@dataclass(frozen=True)
class WindowActs:
    window: Window
    acts: np.ndarray  # [window tokens, d_model] the served layer's activations of the window's text tokens


def _char_range(enc: EncodedText, token: int) -> tuple[int, int]:
    start, end = enc.offsets[token]
    return int(start), int(end)


class Explainer:
    """Built once per loaded detector: the heads as torch modules, the SAE and the bundle's explain artifacts."""

    def __init__(
        self,
        category_heads: dict[str, tuple[AttentionPoolHead, int]],  # category -> (head, label column)
        token_heads: dict[str, tuple[Head, int]],  # PII label -> (head, label column)
        sae: SparseAutoencoder,
        artifacts: ExplainArtifacts | None,
        sae_heads: dict[str, tuple[SAEFeatureHead, int, SparseAutoencoder]] | None = None,  # + the SAE each reads
    ) -> None:
        self.category_heads = category_heads
        self.sae_heads = sae_heads or {}
        self.token_heads = token_heads
        self.sae = sae
        self.artifacts = artifacts if artifacts is not None and artifacts.sae == sae.config.name else None
        self.layer = sae.config.layer

    @classmethod
    def build(
        cls, heads: Sequence[Head], saes: Sequence[SparseAutoencoder], artifacts: ExplainArtifacts | None
    ) -> Explainer:
        """`heads`: the explainer's own modules (token heads are moved to float64 for their gradients). Raises
        ExplainUnavailableError when the bundle has no SAE on its category heads' layer."""
        category_heads: dict[str, tuple[AttentionPoolHead, int]] = {}
        token_heads: dict[str, tuple[Head, int]] = {}
        sae_heads: dict[str, tuple[SAEFeatureHead, int, SparseAutoencoder]] = {}
        by_name = {s.config.name: s for s in saes}
        for head in heads:
            if head.level == "token":
                head.to(torch.float64)
            for col, label in enumerate(head.config.labels):
                if head.level == "token":
                    token_heads[label] = (head, col)
                elif isinstance(head, AttentionPoolHead):
                    category_heads[label] = (head, col)
                elif isinstance(head, SAEFeatureHead) and getattr(head.config, "pooling", "") in ("max", "mean"):
                    sae_heads[label] = (head, col, by_name[head.config.sae])  # type: ignore[attr-defined]
                else:
                    kind = type(head).__name__
                    raise ExplainUnavailableError(f"head {head.config.name} ({kind}) has no exact decomposition; "
                                                  "explanations cover attention-pooled and max/mean SAE-feature "
                                                  "heads")  # fmt: skip
        layers = {h.config.layer for h, _ in category_heads.values()} or {s.config.layer for *_, s in
                                                                           sae_heads.values()}  # fmt: skip
        fitting = [s for s in saes if s.config.layer in layers]
        if len(layers) != 1 or not fitting:
            raise ExplainUnavailableError("this bundle has no SAE on its category heads' layer: retrain it with the "
                                          "[sae] section enabled to explain its answers")  # fmt: skip
        return cls(category_heads, token_heads, fitting[0], artifacts, sae_heads)

    # -- the explanation of one text ---------------------------------------------------------------------------------
    def explain(
        self, enc: EncodedText, spans: Sequence[Span], categories: Sequence[str], windows: Sequence[WindowActs]
    ) -> Explanation:
        with torch.no_grad():  # each window encoded once, read by every category and span
            codes = [self.sae.encode(torch.from_numpy(w.acts)) for w in windows]  # [seq, d_sae] each
        explained = {c: self._category(c, enc, windows, codes) for c in categories
                     if c in self.category_heads or c in self.sae_heads}  # fmt: skip
        return Explanation(explained, tuple(self._span(s, enc, windows, codes) for s in spans))

    def _feature_cites(
        self, contributions: np.ndarray, per_token: np.ndarray, enc: EncodedText, first_token: int
    ) -> tuple[FeatureCite, ...]:
        """contributions [d_sae], per_token [seq, d_sae] (token i of the window is text token first_token + i)."""
        order = np.argsort(-np.abs(contributions), kind="stable")[:TOP_FEATURES]
        order = sorted((i for i in order if contributions[i] != 0.0), key=lambda i: -contributions[i])
        cites = []
        for i in order:
            col = per_token[:, i]
            where = [t for t in np.argsort(-np.abs(col), kind="stable")[:PLACES] if col[t] != 0.0]
            label = self.artifacts.labels.get(int(i)) if self.artifacts is not None else None
            cites.append(FeatureCite(int(i), float(contributions[i]), label.short() if label else None,
                                     tuple(_char_range(enc, first_token + int(t)) for t in sorted(where))))  # fmt: skip
        return tuple(cites)

    def _parts(self, category: str, acts: torch.Tensor, codes: torch.Tensor) -> LogitParts:
        content = torch.ones(len(acts), dtype=torch.bool)
        if category in self.sae_heads:
            sae_head, col, sae = self.sae_heads[category]
            return sae_head_logit_parts(sae_head, acts, content, col, sae)
        head, col = self.category_heads[category]
        return attention_logit_parts(head, acts, content, col, self.sae, codes)

    def winning_window(
        self, category: str, windows: Sequence[WindowActs], codes: Sequence[torch.Tensor] | None = None
    ) -> tuple[WindowActs, LogitParts]:
        """The window whose logit is highest (a text's score is the max over its windows) and its parts; `codes`: the
        SAE's codes of each window, when the caller has them."""
        if codes is None:
            with torch.no_grad():
                codes = [self.sae.encode(torch.from_numpy(w.acts)) for w in windows]
        best = None
        for w, c in zip(windows, codes, strict=True):
            parts = self._parts(category, torch.from_numpy(w.acts), c)
            if best is None or parts.logit > best[1].logit:
                best = (w, parts)
        if best is None:
            raise ConfigError("no window activations were kept for this text")
        return best

    def _category(
        self, category: str, enc: EncodedText, windows: Sequence[WindowActs], codes: Sequence[torch.Tensor]
    ) -> CategoryExplanation:
        w, parts = self.winning_window(category, windows, codes)
        f = parts.features
        if f is None:  # attention_logit_parts returns features whenever it is given an SAE
            raise ConfigError("the SAE split is missing")
        features = self._feature_cites(f.contributions, f.token_contributions, enc, w.window.start)
        listed = sum(c.contribution for c in features)
        top_tokens = [t for t in np.argsort(-np.abs(parts.tokens), kind="stable")[:TOP_TOKENS]]
        tokens = tuple(TokenCite(*_char_range(enc, w.window.start + int(t)), float(parts.tokens[t]))
                       for t in sorted(top_tokens, key=lambda t: -parts.tokens[t]))  # fmt: skip
        supporting, nearest, refit = (), (), None
        if category in self.category_heads:  # influence layers are over an attention head's per-query values
            head = self.category_heads[category][0]
            supporting, nearest, refit = self._rows(category, head, torch.from_numpy(w.acts), parts.attention)
        start, _ = _char_range(enc, w.window.start)
        _, end = _char_range(enc, w.window.end - 1)
        return CategoryExplanation((start, end), parts.logit, parts.bias, features,
                                   float(f.contributions.sum()) - listed, f.offset, f.error, tokens, supporting,
                                   nearest, refit)  # fmt: skip

    def _rows(
        self, category: str, head: AttentionPoolHead, acts: torch.Tensor, attention: np.ndarray
    ) -> tuple[tuple[RowCite, ...], tuple[RowCite, ...], float | None]:
        layer = self.artifacts.influence.get(category) if self.artifacts is not None else None
        if layer is None:
            return (), (), None
        x = np.append(pooled_values(head, acts, attention), 1.0)  # [queries + 1]
        support = layer.support(x)
        top = [int(j) for j in np.argsort(-support, kind="stable")[:TOP_ROWS] if support[j] > 0]
        idx, dist = layer.nearest(x, TOP_ROWS)
        refit = float(1.0 / (1.0 + np.exp(-np.clip(layer.logit(x), -60, 60))))
        return (tuple(_row_cite(layer, j, float(support[j])) for j in top),
                tuple(_row_cite(layer, int(j), float(d)) for j, d in zip(idx, dist, strict=True)), refit)  # fmt: skip

    def _span(
        self, span: Span, enc: EncodedText, windows: Sequence[WindowActs], codes: Sequence[torch.Tensor]
    ) -> SpanExplanation:
        validator = DEFAULT_VALIDATORS.get(span.label)
        method = validator.method if validator is not None else None
        head_col = self.token_heads.get(span.label)
        inside = [i for i, (s, e) in enumerate(enc.offsets) if s < span.end and e > span.start]
        owner_at = next((i for i, w in enumerate(windows) for t in inside
                         if w.window.own_start <= t < w.window.own_end), None)  # fmt: skip
        owner = windows[owner_at] if owner_at is not None else None
        if head_col is None or owner is None or head_col[0].config.layer != self.layer:
            return SpanExplanation(span.label, span.start, span.end, SPAN_METHOD, (), 0.0, method)
        head, col = head_col
        acts = torch.from_numpy(owner.acts).to(torch.float64).unsqueeze(0).requires_grad_(True)  # [1, seq, d_model]
        mask = torch.ones(acts.shape[:2], dtype=torch.bool)
        local = [t - owner.window.start for t in inside if owner.window.own_start <= t < owner.window.own_end]
        if isinstance(head, SAEFeatureHead) and head.config.sae != self.sae.config.name:  # type: ignore[attr-defined]
            return SpanExplanation(span.label, span.start, span.end, SPAN_METHOD, (), 0.0, method)
        with torch.enable_grad():
            # an SAE token head reads codes: the gradient then flows through the (frozen, float32) encoder
            features = {self.sae.config.name: self.sae.encode(acts.float()).double()} if isinstance(
                head, SAEFeatureHead) else {}  # fmt: skip
            logits = head(Activations({self.layer: acts}, mask, mask, features))[0, :, col]  # [seq]
            t_star = max(local, key=lambda t: float(logits[t].detach()))
            (grad,) = torch.autograd.grad(logits[t_star], acts)
        with torch.no_grad():
            g, h = grad[0], acts[0].detach()  # [seq, d_model] each
            recon, per = sparse_split(codes[owner_at].to(torch.float64), self.sae.W_dec.to(torch.float64), g)
            error = h - (recon + self.sae.b_dec.to(torch.float64))  # [seq, d_model]
            features = self._feature_cites(per.sum(0).numpy(), per.numpy(), enc, owner.window.start)
            sae_error = float((g * error).sum())
        return SpanExplanation(span.label, span.start, span.end, SPAN_METHOD, features, sae_error, method)


def pooled_values(head: AttentionPoolHead, acts: torch.Tensor, attention: np.ndarray) -> np.ndarray:
    """[queries] each query's pooled score sum_t a[t, q] (value_q . z_t) on one window ([seq, d_model] acts and the
    served [seq, queries] attention weights): the head's logit is bias + weight . pooled."""
    with torch.no_grad():
        z = (acts.to(torch.float64) - head.center.to(torch.float64)) * head.scale.to(torch.float64)
        values = z @ head.value.to(torch.float64).T  # [seq, queries]
        return (torch.from_numpy(attention) * values).sum(0).numpy()


def _row_cite(layer: InfluenceLayer, j: int, value: float) -> RowCite:
    r = layer.rows[j]
    snippet = r.snippet if redistributable(r.licence) else None
    return RowCite(r.source, r.role, r.label, r.row, r.licence, snippet, round(value, 6))
