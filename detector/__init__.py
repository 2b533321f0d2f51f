"""probeguard detector: PII spans and unsafe categories from probes on a truncated host model."""

from detector.errors import (
    BundleCorruptError,
    BundleError,
    BundleHostMismatchError,
    BundleNotFoundError,
    ConfigError,
    EmptyInputError,
    HostError,
    InferenceError,
    InputError,
    InputTooLargeError,
    InvalidInputError,
    ProbeguardError,
)
from detector.pipeline import CategoryScore, Detection, Detector
from detector.redact import Redactor
from detector.settings import DetectorSettings
from detector.spans import Span

PII_LABELS: tuple[str, ...] = (
    "PERSON", "EMAIL", "PHONE", "ADDRESS", "CREDIT_CARD", "IBAN", "SSN",
    "IP_ADDRESS", "DATE_OF_BIRTH", "USERNAME", "PASSWORD", "URL",
)  # fmt: skip
CATEGORIES: tuple[str, ...] = ("unsafe", "prompt_injection")

__all__ = [
    "CATEGORIES",
    "PII_LABELS",
    "BundleCorruptError",
    "BundleError",
    "BundleHostMismatchError",
    "BundleNotFoundError",
    "CategoryScore",
    "ConfigError",
    "Detection",
    "Detector",
    "DetectorSettings",
    "EmptyInputError",
    "HostError",
    "InferenceError",
    "InputError",
    "InputTooLargeError",
    "InvalidInputError",
    "ProbeguardError",
    "Redactor",
    "Span",
]
