"""One exception family for emolens.

The CLI prints the message of any `EmolensError` and exits 1; the HTTP API answers 4xx with the
same text. Messages name the file or row, what was found, what was expected and the fix.
"""

from __future__ import annotations


class EmolensError(Exception):
    """Base class of every error emolens raises on purpose."""


class DataError(EmolensError):
    """A dataset, image or video could not be read, or holds nothing usable."""


class ConfigError(EmolensError, ValueError):
    """A config value or option is invalid (unknown key, wrong type, out of range)."""


class ModelError(EmolensError):
    """A model name is unknown, or a model file is missing, corrupt or incompatible."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a batch or a video: what was done is kept (a valid table, a playable video),
    and the message says how much and where. A KeyboardInterrupt, so it stops a program as Ctrl-C does."""
