"""Output file names that never replace a user's files unless asked: see `emolens.paths`."""

from emolens.paths import free_stem

__all__ = ["free_stem"]
