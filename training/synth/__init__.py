"""Deterministic synthetic PII training data for probeguard.

``generate_examples(n, seed=...)`` renders hand-written templates (support-bot chat, pasted e-mails and signatures,
forms, multi-line addresses, logs/config with secrets, messy lower-case variants, and a few templates in German,
French, Spanish, Italian, Dutch and Japanese) with values from seeded Faker instances and a seeded
``random.Random``. Spans are recorded while the text is concatenated, so ``text[start:end]`` is exact.

Labels (``PII_LABELS``): PERSON, EMAIL, PHONE, ADDRESS (street address incl. city/postcode, may span lines),
CREDIT_CARD, IBAN, SSN (any national ID number: US SSN, UK NINO, French INSEE, Spanish DNI/NIE, Italian codice
fiscale, Dutch BSN, German Steuer-ID / KVNR / RVNR, Japanese My Number), IP_ADDRESS, DATE_OF_BIRTH, USERNAME,
PASSWORD (passwords, API keys, tokens, secrets) and URL (personal sites and social profiles).

Label policy for hard negatives (kind="negative"):

* Public figures named in a news-like or encyclopaedic context, historical and fictional people are **not** PII.
* Placeholder e-mails/keys/hosts in documentation (``user@example.com``, ``YOUR_API_KEY``), role mailboxes,
  documentation IP ranges and loopback addresses are **not** PII.
* Order, tracking, invoice, ticket, part and serial numbers, versions/build numbers, prices, card "ending in 1234"
  fragments, commit hashes, checksums, request UUIDs and non-birth dates (meetings, deadlines, releases) are
  **not** PII.
* A city, region or country mentioned on its own is **not** an ADDRESS; company and product names are not PII.
* Real PII that does appear in a negative template (``negmix_*``) is labelled as usual.

Splits: each template's ``template_id`` is hashed into ``train`` (~80%) or ``heldout`` (~20%);
``template_split="heldout"`` never yields a template that ``"train"`` can produce. ``ja_JP`` is available but
not in ``DEFAULT_LOCALES`` so that it can serve as a held-out locale.
"""

from __future__ import annotations

from probeguard.training.synth.generate import generate_examples, to_jsonl_row
from probeguard.training.synth.locales import ALL_LOCALES, DEFAULT_LOCALES
from probeguard.training.synth.registry import all_templates, templates_for
from probeguard.training.synth.schema import PII_LABELS, SynthExample, SynthSpan

__all__ = [
    "ALL_LOCALES",
    "DEFAULT_LOCALES",
    "PII_LABELS",
    "SynthExample",
    "SynthSpan",
    "all_templates",
    "generate_examples",
    "templates_for",
    "to_jsonl_row",
]
