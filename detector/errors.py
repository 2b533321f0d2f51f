"""Typed errors of the detector library.

Every message here is safe to log and to return to a client: it names files, fields, sizes and indices, never the
text under inspection. The service maps these classes to HTTP status codes in one table.
"""

from __future__ import annotations


class ProbeguardError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(ProbeguardError):
    """A setting or configuration value is invalid."""


class InputError(ProbeguardError):
    """The caller's input cannot be scored (client error)."""


class EmptyInputError(InputError):
    """A text is empty or whitespace only."""


class InputTooLargeError(InputError):
    """A text or a batch is over a configured size limit."""


class InvalidInputError(InputError):
    """A text has the wrong type or cannot be encoded."""


class HostError(ProbeguardError):
    """The host model cannot be found, assembled, converted or verified."""


class BundleError(ProbeguardError):
    """A bundle is missing, corrupt or does not match the host."""


class BundleNotFoundError(BundleError):
    """The bundle folder or one of its files does not exist."""


class BundleCorruptError(BundleError):
    """A bundle file is unreadable, fails its checksum or has an invalid field."""


class BundleHostMismatchError(BundleError):
    """The bundle was trained on a different host than the one loaded."""


class InferenceError(ProbeguardError):
    """The backend failed while scoring a batch (server-side, retryable)."""
