"""Checks of config values where they enter: one message shape for every config section."""

from __future__ import annotations

from collections.abc import Iterable
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


def check_names(kind: str, given: list[str], known: Iterable[str]) -> list[str]:
    """`given` without repeats, in order; ConfigError when it is empty or names something not in
    `known` (with a close match and the known names)."""
    known = list(known)
    if not given:
        raise ConfigError(f"give at least one {kind}; known: {', '.join(known)}")
    for g in given:
        if g not in known:
            close = get_close_matches(g, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown {kind} {g!r}.{hint} Known: {', '.join(known)}")
    return list(dict.fromkeys(given))
