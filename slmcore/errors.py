"""Typed errors: every failure a user can cause raises one of these (DESIGN.md section 5)."""

from __future__ import annotations


class SlmError(Exception):
    """Base class of every error slmcore raises on purpose."""


class ModelFormatError(SlmError):
    """A model file is corrupt, truncated, malicious or does not match its config."""


class ConfigError(SlmError):
    """config.json is missing, invalid, or describes an unsupported architecture."""


class TokenizerFileError(SlmError):
    """Tokenizer files are missing or unreadable."""


class ChatTemplateError(SlmError):
    """A chat template is missing, raises, escapes the sandbox or renders too much."""


class DownloadError(SlmError):
    """The default model cannot be fetched."""


class InvalidArgumentError(SlmError, ValueError):
    """An argument has the wrong type or is out of its allowed range."""


class ContextLengthError(SlmError):
    """The sequence would not fit in max_seq_len."""


class InvalidTokenError(SlmError, ValueError):
    """A token id is outside the vocabulary."""


class NumericalError(SlmError):
    """NaN or Inf appeared in the logits."""


class OutOfMemoryError(SlmError, MemoryError):
    """An allocation failed."""


class DeviceUnavailableError(SlmError):
    """The requested device is not built in or not present."""


class ClosedError(SlmError):
    """The model was used after close()."""


__all__ = [
    "SlmError",
    "ModelFormatError",
    "ConfigError",
    "TokenizerFileError",
    "ChatTemplateError",
    "DownloadError",
    "InvalidArgumentError",
    "ContextLengthError",
    "InvalidTokenError",
    "NumericalError",
    "OutOfMemoryError",
    "DeviceUnavailableError",
    "ClosedError",
]
