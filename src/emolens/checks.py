"""Checks of config values where they enter: one message shape for every config section."""

from __future__ import annotations

from difflib import get_close_matches

from emolens.errors import ConfigError


def check_choice(section: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    """ConfigError naming `section.name`, the value, a close match and the choices, unless
    `value` is one of `choices`."""
    if value not in choices:
        close = get_close_matches(str(value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{section}.{name} = {value!r} is not allowed.{hint} Expected one of {', '.join(choices)}")


def check_range(section: str, name: str, value: float, lo: float, hi: float) -> None:
    """ConfigError naming `section.name`, the value and [lo, hi], unless lo <= value <= hi."""
    if not lo <= value <= hi:
        raise ConfigError(f"{section}.{name} = {value} is out of range; expected a value in [{lo}, {hi}]")
