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
from detector.labels import CATEGORIES, PII_LABELS
from detector.pipeline import CategoryScore, Detection, Detector
from detector.redact import Redactor
from detector.settings import DetectorSettings
from detector.spans import Span

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
