"""The label vocabulary: PII span labels the default bundle emits and the message categories it scores.

One definition, read by the library, the synthetic data generator and training. A bundle may carry other labels
(its heads' configs say which); these are the defaults.
"""

from __future__ import annotations

PII_LABELS: tuple[str, ...] = (
    "PERSON", "EMAIL", "PHONE", "ADDRESS", "CREDIT_CARD", "IBAN", "SSN",
    "IP_ADDRESS", "DATE_OF_BIRTH", "USERNAME", "PASSWORD", "URL",
)  # fmt: skip
CATEGORIES: tuple[str, ...] = ("unsafe", "prompt_injection")
