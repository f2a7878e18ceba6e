"""Parameters of the baseline components: defaults in one place, unknown keys rejected.

Every feature extractor and classifier declares its `DEFAULTS`; the user's `params`
(`{"linear_svm": {"C": 0.1}}` in Python, `--param linear_svm.C=0.1` on the command line) are
checked against them with close-match suggestions before any data is read.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from emolens.errors import ConfigError


def merge_params(component: str, defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """`defaults` updated with `given`, after checking every key and the type of every value."""
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            close = [k for k in defaults if k.lower() == str(key).lower()] or get_close_matches(key, defaults, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{component} has no parameter {key!r}.{hint} Known: {', '.join(sorted(defaults))}")
        ref = defaults[key]
        if isinstance(ref, bool):
            ok = isinstance(value, bool)
        elif isinstance(ref, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(ref, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(ref, tuple):
            ok = isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            value = tuple(value) if ok else value
        elif ref is None:  # "none or a number": e.g. max_depth
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        else:
            ok = isinstance(value, type(ref))
        if not ok:
            raise ConfigError(f"{component}.{key} must be like {ref!r} ({type(ref).__name__}), got {value!r}")
        out[key] = value
    return out


def parse_param_overrides(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """['linear_svm.C=0.1', 'hog.orientations=12'] -> {'linear_svm': {'C': 0.1}, 'hog': {'orientations': 12}}.

    Values are read as YAML, so 0.1, 12, true, null and [8, 8] arrive typed.
    """
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for text in items or []:
        key, sep, raw = text.partition("=")
        component, dot, name = key.strip().partition(".")
        if not sep or not dot or not component or not name:
            raise ConfigError(f"parameter {text!r} must look like component.key=value, e.g. linear_svm.C=0.1")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"parameter {text!r}: value {raw!r} is not readable; quote strings, write lists as [8, 8]") from None
        out.setdefault(component, {})[name] = value
    return out
