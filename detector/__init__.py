"""probeguard detector: PII spans and unsafe categories from probes on a truncated host model."""

from probeguard.detector.errors import (
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
from probeguard.detector.labels import CATEGORIES, PII_LABELS
from probeguard.detector.pipeline import CategoryScore, Detection, Detector
from probeguard.detector.redact import Redactor
from probeguard.detector.settings import DetectorSettings
from probeguard.detector.spans import Span

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
