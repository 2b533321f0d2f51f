"""Detector: texts -> tokenize -> one truncated forward pass per batch -> heads -> spans and categories."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probeguard.detector.backends import Backend, HeadLogits, TorchBackend
from probeguard.detector.backends.base import layer_output_name
from probeguard.detector.batching import PassCost, plan_passes
from probeguard.detector.bundle import Bundle, load_bundle
from probeguard.detector.calibrate import CALIBRATION_TEXT, CostFit, calibration_lengths, fit_pass_cost, time_rows
from probeguard.detector.errors import ConfigError, EmptyInputError, InputTooLargeError, InvalidInputError
from probeguard.detector.explanation import Explainer, ExplainUnavailableError, Explanation, WindowActs
from probeguard.detector.export import serving_variant
from probeguard.detector.heads import head_level
from probeguard.detector.host import HostInfo, resolve_host
from probeguard.detector.model import ProbeModel
from probeguard.detector.settings import DetectorSettings
from probeguard.detector.spans import Span, decode_spans
from probeguard.detector.tokenize import EncodedText, HostTokenizer, Window, plan_windows, whole_window
from probeguard.detector.truncate import load_host_config, load_truncated_host, num_host_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CategoryScore:
    score: float  # calibrated probability
    flagged: bool  # score >= threshold
    threshold: float


@dataclass(frozen=True)
class Detection:
    spans: tuple[Span, ...]
    categories: dict[str, CategoryScore]
    n_tokens: int = 0
    explanation: Explanation | None = None  # only when asked for (detect(..., explain=True))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spans": [s.to_dict() for s in self.spans],
            "categories": {k: {"score": round(v.score, 4), "flagged": v.flagged} for k, v in self.categories.items()},
        }
        if self.explanation is not None:
            out["explanation"] = dataclasses.asdict(self.explanation)
        return out


@dataclass
class TextScores:
    """What one text's scored windows have added so far (`Detector.score_windows`; one call or several)."""

    token_probs: np.ndarray  # [n_tokens, n_labels]
    cat_probs: dict[str, float]  # highest window so far
    acts: list[WindowActs] | None  # the served layer per scored window, kept for an explanation; None = not asked


@dataclass(frozen=True)
class _OutputPlan:
    """Which head produces which token label or category."""

    token_heads: tuple[str, ...]
    token_labels: tuple[str, ...]
    token_thresholds: np.ndarray  # [n_token_labels]
    sequence_heads: tuple[str, ...]
    categories: dict[str, tuple[str, int, float]] = field(default_factory=dict)  # category -> (head, column, thr)


def _plan_outputs(bundle: Bundle, category_thresholds: dict[str, float]) -> _OutputPlan:
    """`category_thresholds` replace the bundle's thresholds of those categories (a category the bundle lacks is a
    ConfigError: a deployment's override must not silently do nothing)."""
    token_heads, labels, thresholds, seq_heads = [], [], [], []
    categories: dict[str, tuple[str, int, float]] = {}
    for entry in bundle.manifest.active_heads:
        name = entry.config.name
        if head_level(entry.type, entry.config) == "token":
            token_heads.append(name)
            labels.extend(entry.config.labels)
            thresholds.extend(entry.thresholds[label] for label in entry.config.labels)
        else:
            seq_heads.append(name)
            for col, label in enumerate(entry.config.labels):
                categories[label] = (name, col, category_thresholds.get(label, entry.thresholds[label]))
    unknown = sorted(set(category_thresholds) - set(categories))
    if unknown:
        raise ConfigError(f"PROBEGUARD_CATEGORY_THRESHOLDS names {unknown}; the bundle's categories are "
                          f"{sorted(categories)}")  # fmt: skip
    return _OutputPlan(
        tuple(token_heads), tuple(labels), np.asarray(thresholds, dtype=np.float32), tuple(seq_heads), categories
    )


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


class Detector:
    """Loaded once per process; `detect` is thread-compatible but not re-entrant on the torch backend."""

    def __init__(
        self,
        bundle: Bundle,
        backend: Backend,
        tokenizer: HostTokenizer,
        host: HostInfo,
        settings: DetectorSettings,
    ) -> None:
        self.bundle = bundle
        self.backend = backend
        self.tokenizer = tokenizer
        self.host = host
        self.settings = settings
        self.plan = _plan_outputs(bundle, settings.threshold_overrides())
        self.content_len = settings.window_tokens - tokenizer.num_special
        # What a forward pass costs: the backend's fixed model until `calibrate_pass_cost` fits one on this box.
        self.pass_cost: PassCost = backend.pass_cost
        self._explainer: Explainer | None = None
        self._explain_refusal: ExplainUnavailableError | None = None
        try:
            self._explainer = Explainer.build(bundle.build_heads(), list(bundle.saes.values()), bundle.explain)
        except ExplainUnavailableError as exc:
            self._explain_refusal = exc

    @property
    def explainer(self) -> Explainer:
        """Raises ExplainUnavailableError (with the reason) when this bundle cannot explain its answers."""
        if self._explainer is None:
            raise self._explain_refusal or ExplainUnavailableError("this bundle cannot explain its answers")
        return self._explainer

    @classmethod
    def load(cls, bundle_path: Path | str, settings: DetectorSettings | None = None) -> Detector:
        """Load and check a bundle, resolve its host (offline), build the host truncated at the deepest layer read."""
        settings = settings if settings is not None else DetectorSettings.from_env()
        started = time.perf_counter()
        bundle = load_bundle(Path(bundle_path))
        host = resolve_host(bundle.manifest.host.id, settings.cache_dir, settings.host_path)
        config = load_host_config(host.path)
        bundle.check_host(host, num_host_layers(config), int(config.hidden_size))
        tokenizer = HostTokenizer.from_folder(host.path)

        def build_model() -> ProbeModel:
            truncated = load_truncated_host(host.path, bundle.manifest.layers, config)
            return ProbeModel(truncated, bundle.build_heads(), len(tokenizer.prefix_ids), len(tokenizer.suffix_ids),
                              bundle.build_saes())  # fmt: skip

        backend: Backend
        variant = serving_variant(bundle.manifest.host.activations, settings.graph_variant, settings.backend)
        if settings.backend == "onnx":
            from probeguard.detector.backends.onnx import OnnxBackend
            from probeguard.detector.export import ensure_graph

            # The torch host is built only when the graph must be exported; a cached graph needs no torch weights.
            graph = ensure_graph(build_model, bundle, host, settings.cache_dir, variant)
            providers = [p.strip() for p in settings.providers.split(",") if p.strip()] or None
            head_names = [e.config.name for e in bundle.manifest.active_heads]
            backend = OnnxBackend(graph, head_names, settings.num_threads, providers)
            if variant == "int8" and backend.providers[0] != "CPUExecutionProvider":
                # onnxruntime has no CUDA kernel for dynamic int8 MatMul: those nodes fall back to the CPU.
                log.warning("int8 bundle on a GPU runs its quantised MatMuls on the CPU; on a GPU serve an "
                            "fp32-trained bundle (fp16 graph)", extra={"variant": variant})  # fmt: skip
        else:
            backend = TorchBackend(build_model(), settings.num_threads)
        log.info(
            "detector loaded",
            extra={
                "bundle": bundle.manifest.name,
                "layers": list(bundle.manifest.layers),
                "variant": variant if settings.backend == "onnx" else "torch",
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return cls(bundle, backend, tokenizer, host, settings)

    # -- tokenize ---------------------------------------------------------------------------------------------------
    def validate(self, texts: Sequence[object]) -> list[str]:
        """Type, size and content checks; messages name the index and sizes, never the text."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError("texts must be a list of strings")
        out: list[str] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"text {i} has type {type(text).__name__}, expected str")
            if len(text) > self.settings.max_chars:
                raise InputTooLargeError(f"text {i} has {len(text)} characters; the limit is {self.settings.max_chars}")
            if not text.strip():
                raise EmptyInputError(f"text {i} is empty or whitespace only")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError(f"text {i} is not valid Unicode (lone surrogate)") from None
            out.append(text)
        return out

    def encode(self, texts: Sequence[object]) -> list[EncodedText]:
        return [self.tokenizer.encode(t) for t in self.validate(texts)]

    # -- host + heads ------------------------------------------------------------------------------------------------
    def windows_of(self, encoded: Sequence[EncodedText]) -> list[Window]:
        """The windows these texts are scored in (`text_index` = position in `encoded`)."""
        windows: list[Window] = []
        for i, enc in enumerate(encoded):
            windows.extend(plan_windows(len(enc.ids), self.content_len, self.settings.window_overlap, i))
        return windows

    def _row_length(self, window: Window) -> int:
        """The window's row as the backend sees it: its tokens plus the special tokens around them."""
        return window.end - window.start + self.tokenizer.num_special

    def window_lengths(self, encoded: Sequence[EncodedText]) -> list[int]:
        """Row lengths of the windows these texts are scored in."""
        return [self._row_length(w) for w in self.windows_of(encoded)]

    def row_lengths(self, windows: Sequence[Window]) -> list[int]:
        return [self._row_length(w) for w in windows]

    def batch_cost(self, lengths: Sequence[int], token_budget: int | None = None) -> float:
        """Padded tokens (plus per-call overhead) the best plan of forward passes over rows of these lengths costs."""
        budget = token_budget or self.settings.batch_tokens
        return plan_passes(sorted(lengths, reverse=True), budget, self.pass_cost)[1]

    def rows_work(self, lengths: Sequence[int]) -> float:
        """Compute of rows of these lengths without padding or per-call overhead: what they add to a full batch."""
        return sum(self.pass_cost.row(n) for n in lengths)

    def forward_batches(self, encoded: Sequence[EncodedText], token_budget: int | None = None) -> list[list[Window]]:
        """Windows sorted longest first, split into the forward passes of least padded cost, each within
        `token_budget` padded tokens (default: settings.batch_tokens); a window over the budget runs alone."""
        return self.plan_passes(self.windows_of(encoded), token_budget)

    def plan_passes(self, windows: Sequence[Window], token_budget: int | None = None) -> list[list[Window]]:
        """`forward_batches` for any windows (those of several texts, or part of one text's)."""
        budget = token_budget or self.settings.batch_tokens
        ordered = sorted(windows, key=lambda w: w.end - w.start, reverse=True)
        sizes, _ = plan_passes(self.row_lengths(ordered), budget, self.pass_cost)
        batches, at = [], 0
        for size in sizes:
            batches.append(ordered[at : at + size])
            at += size
        return batches

    def calibrate_pass_cost(self, repeats: int = 2) -> CostFit:
        """Time one row at a few lengths up to a full window and plan with the cost model they fit (detector.calibrate);
        about 2 s (int8) to 3 s (fp32) for Gemma 3 270M at K = 8 on one CPU thread (measured on a 2-core AVX2 box)."""
        lengths = calibration_lengths(self.settings.window_tokens)
        filler = self.tokenizer.encode(CALIBRATION_TEXT)
        content = max(lengths) - self.tokenizer.num_special
        text = EncodedText(np.resize(filler.ids, content), np.resize(filler.offsets, (content, 2)))

        def run_row(n: int) -> None:
            n_content = max(1, n - self.tokenizer.num_special)
            self.backend.forward(self.tokenizer.collate([whole_window(0, n_content)], [text]))

        fit = fit_pass_cost(time_rows(run_row, lengths, repeats), self.backend.pass_cost)
        self.pass_cost = fit.cost
        return fit

    def score(
        self, encoded: Sequence[EncodedText], token_budget: int | None = None
    ) -> tuple[list[np.ndarray], list[dict[str, float]]]:
        """Token label probabilities [n_tokens, n_labels] and category probabilities, per text."""
        scores = self.start_scores(encoded)
        self.score_windows(self.windows_of(encoded), encoded, scores, token_budget)
        return [s.token_probs for s in scores], [s.cat_probs for s in scores]

    def window_activations(self, encoded: Sequence[EncodedText]) -> list[list[WindowActs]]:
        """Per text, the served layer activations of each of its windows (what an explanation reads)."""
        scores = self.start_scores(encoded, [True] * len(encoded))
        self.score_windows(self.windows_of(encoded), encoded, scores)
        return [s.acts or [] for s in scores]

    def start_scores(self, encoded: Sequence[EncodedText], keep_acts: Sequence[bool] = ()) -> list[TextScores]:
        """Empty per-text accumulators for `score_windows`; `keep_acts[i]` keeps text i's served layer activations
        (what its explanation reads)."""
        n_labels = len(self.plan.token_labels)
        keep = list(keep_acts) or [False] * len(encoded)
        return [TextScores(np.zeros((len(e.ids), n_labels), dtype=np.float32), dict.fromkeys(self.plan.categories, 0.0),
                           [] if k else None) for e, k in zip(encoded, keep, strict=True)]  # fmt: skip

    def score_windows(
        self,
        windows: Sequence[Window],
        encoded: Sequence[EncodedText],
        scores: Sequence[TextScores],
        token_budget: int | None = None,
    ) -> None:
        """Run these windows (`text_index` = position in `encoded` and `scores`) and add what they own to `scores`.
        A text's windows may come in several calls, in any order: each window writes only the tokens it owns, and a
        category keeps its highest window, so the result equals scoring them all at once. The served layer is fetched
        from the backend only for the passes that hold a window whose text keeps its activations."""
        for pass_windows in self.plan_passes(windows, token_budget):
            batch = self.tokenizer.collate(pass_windows, encoded)
            wanted = [row for row, w in enumerate(batch.windows) if scores[w.text_index].acts is not None]
            logits = self.backend.forward(batch, layers=True) if wanted else self.backend.forward(batch)
            self._stitch(batch.windows, batch.content_offset, logits, scores)
            if wanted:
                layer = logits[layer_output_name(self.explainer.layer)]  # [batch, seq, d_model]
                at = batch.content_offset
                for row in wanted:
                    w = batch.windows[row]
                    acts = scores[w.text_index].acts
                    if acts is not None:
                        acts.append(WindowActs(w, np.array(layer[row, at : at + w.end - w.start])))

    def _stitch(
        self,
        windows: Sequence[Window],
        offset: int,
        logits: HeadLogits,
        scores: Sequence[TextScores],
    ) -> None:
        plan = self.plan
        token_cols = [sigmoid(logits[name]) for name in plan.token_heads]  # each [batch, seq, labels_h]
        token_all = np.concatenate(token_cols, axis=-1) if token_cols else None  # [batch, seq, n_labels]
        for row, w in enumerate(windows):
            if token_all is not None:
                lo, hi = offset + w.own_start - w.start, offset + w.own_end - w.start
                scores[w.text_index].token_probs[w.own_start : w.own_end] = token_all[row, lo:hi]
            cats = scores[w.text_index].cat_probs
            for cat, (head, col, _) in plan.categories.items():
                cats[cat] = max(cats[cat], float(sigmoid(logits[head][row, col])))  # any unsafe window flags

    # -- spans ---------------------------------------------------------------------------------------------------------
    def detect(
        self, texts: Sequence[object], token_budget: int | None = None, explain: bool = False
    ) -> list[Detection]:
        """Spans and categories per text; `token_budget` (default: settings.batch_tokens) bounds each forward pass;
        `explain` adds each text's explanation (ExplainUnavailableError when the bundle cannot explain)."""
        valid = self.validate(texts)
        flags = [explain] * len(valid)
        return self.detect_encoded(valid, [self.tokenizer.encode(t) for t in valid], token_budget, flags)

    def detect_encoded(
        self,
        valid: Sequence[str],
        encoded: Sequence[EncodedText],
        token_budget: int | None = None,
        explain: Sequence[bool] = (),
    ) -> list[Detection]:
        """`detect` for texts already validated and tokenized (the service tokenizes before queueing); `explain[i]`
        asks for text i's explanation (absent: none)."""
        scores = self.start_scores(encoded, explain)
        if any(s.acts is not None for s in scores):
            _ = self.explainer  # ExplainUnavailableError before any work when the bundle cannot explain
        self.score_windows(self.windows_of(encoded), encoded, scores, token_budget)
        return self.finish(valid, encoded, scores)

    def finish(
        self, valid: Sequence[str], encoded: Sequence[EncodedText], scores: Sequence[TextScores]
    ) -> list[Detection]:
        """Spans, categories and (where activations were kept) explanations of texts whose windows have all been
        scored (`score_windows`)."""
        plan = self.plan
        results = []
        for text, enc, score in zip(valid, encoded, scores, strict=True):
            spans = decode_spans(text, enc.offsets, score.token_probs, plan.token_labels, plan.token_thresholds)
            categories = {
                c: CategoryScore(p, p >= plan.categories[c][2], plan.categories[c][2])
                for c, p in score.cat_probs.items()
            }
            explanation = None
            if score.acts is not None:  # every category: a caller's own thresholds may flag others
                explanation = self.explainer.explain(enc, spans, list(categories), score.acts)
            results.append(Detection(tuple(spans), categories, len(enc.ids), explanation))
        return results

    def info(self) -> dict[str, Any]:
        m = self.bundle.manifest
        return {
            "bundle": {"name": m.name, "version": m.version, "path": str(self.bundle.path), "created_at": m.created_at},
            "host": {
                "id": self.host.id,
                "sha256": self.host.sha256,
                "path": str(self.host.path),
                "family": m.host.family,
                "num_layers": m.host.num_layers,
                "d_model": m.host.d_model,
                "activations": m.host.activations,  # the arithmetic the heads were trained on and are served with
            },
            "layers": list(m.layers),
            "backend": self.backend.name,
            "pass_cost": dataclasses.asdict(self.pass_cost),  # calibrated on this box once the service is ready
            "labels": list(self.plan.token_labels),
            "categories": list(self.plan.categories),
            "thresholds": {e.config.name: e.thresholds for e in m.active_heads},  # the bundle's
            "category_thresholds": {c: thr for c, (_, _, thr) in self.plan.categories.items()},  # applied
            "window_tokens": self.settings.window_tokens,
        }
