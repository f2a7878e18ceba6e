"""Architecture arguments a model file may set: declared per architecture, checked before any build.

A model file's `arch_kwargs` reach the model's constructor (and, for "timm:NAME", timm's
`create_model`) unchanged, so they are as trusted as code unless bounded. Each architecture
declares the arguments it accepts with their type and range (scikit-learn's declared parameter
constraints); `check_arch_kwargs` rejects anything else with a message naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

from emolens.errors import ModelError

# Set by emolens itself from the config (labels, preprocess.input_size, grayscale input), never by a file.
RESERVED = ("num_classes", "input_size", "in_chans")


@dataclass(frozen=True)
class Arg:
    """One argument: a number (`kind` int or float) in [low, high], a bool, a str from `choices`,
    or, with `items`, a list of `items[0]` to `items[1]` such numbers (e.g. stage widths)."""

    kind: type
    low: float = 0
    high: float = 0
    items: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any, where: str) -> Any:
        """The value as the constructor should get it (lists become tuples), or ModelError."""
        if self.items is None:
            return self._scalar(value, where)
        lo, hi = self.items
        if not isinstance(value, list | tuple) or not lo <= len(value) <= hi:
            raise ModelError(f"{where}: expected a list of {lo} to {hi} {self.kind.__name__}s, found {_show(value)}")
        return tuple(self._scalar(v, f"{where}[{i}]") for i, v in enumerate(value))

    def _scalar(self, value: Any, where: str) -> Any:
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ModelError(f"{where}: expected true or false, found {_show(value)}")
            return value
        if self.kind is str:
            if value not in self.choices:
                raise ModelError(f"{where}: expected one of {list(self.choices)}, found {_show(value)}")
            return value
        # bool is an int to Python; a file saying `true` for a width is a mistake, not 1.
        ok = isinstance(value, int) if self.kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not math.isfinite(value) or not self.low <= value <= self.high:
            raise ModelError(f"{where}: expected {'an integer' if self.kind is int else 'a number'} in [{self.low}, {self.high}], found {_show(value)}")
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


DROPOUT = Arg(float, 0.0, 0.95)
WIDTHS = Arg(int, 1, 2048, items=(1, 6))  # channels per stage; the shipped models use 32-512 over 3-4 stages

# The arguments of emolens' own architectures and of timm models ("timm:*"). Only these may
# come from a file: anything else a constructor accepts stays a Python-API choice.
ARCH_ARGS: dict[str, dict[str, Arg]] = {
    "simple_cnn": {"dropout": DROPOUT},
    "resnet_fer": {"widths": WIDTHS, "blocks": Arg(int, 1, 16, items=(1, 6)), "dropout": DROPOUT},
    "vgg_fer": {"widths": WIDTHS, "depth": Arg(int, 1, 8), "hidden": Arg(int, 1, 8192), "dropout": DROPOUT},
    "timm:*": {
        "drop_rate": DROPOUT,
        "drop_path_rate": DROPOUT,
        "img_size": Arg(int, 16, 256),  # ViTs need it; the same bounds as preprocess.input_size
        "global_pool": Arg(str, choices=("", "avg", "max", "avgmax", "catavgmax", "token")),
    },
}
ARCH_ARGS["resnet_fer_small"] = ARCH_ARGS["resnet_fer"]
ARCH_ARGS["vgg_fer_small"] = ARCH_ARGS["vgg_fer"]

# Architectures registered elsewhere (register_model in user code) declare nothing here: their
# constructor's signature is the allow-list, and values must be small plain scalars or lists.
_PLAIN = {bool: Arg(bool), int: Arg(int, -4096, 4096), float: Arg(float, -1e6, 1e6)}


def allowed_args(arch: str) -> dict[str, Arg] | None:
    """The declared arguments of `arch`, or None for an architecture that declares none."""
    prefix, sep, _ = arch.partition(":")
    return ARCH_ARGS.get(f"{prefix}:*" if sep else arch)


def check_arch_kwargs(arch: str, kwargs: Any, source: str) -> dict[str, Any]:
    """`kwargs` checked against what `arch` allows; lists become tuples. ModelError names the field."""
    if not isinstance(kwargs, dict):
        raise ModelError(f"{source}: arch_kwargs must be a JSON object of architecture arguments, found {type(kwargs).__name__}")
    spec = allowed_args(arch)
    out = {}
    for key, value in kwargs.items():
        where = f"{source}: arch_kwargs.{key}"
        if key in RESERVED:
            raise ModelError(f"{where}: set by emolens from the labels, preprocess.input_size and grayscale input; remove it from arch_kwargs")
        if spec is None:
            out[key] = _check_plain(value, where)
            continue
        if key not in spec:
            close = get_close_matches(str(key), spec, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ModelError(f"{where}: not an argument a model file may set for {arch!r}.{hint} Allowed: {', '.join(sorted(spec)) or 'none'}")
        out[key] = spec[key].check(value, where)
    return out


def _check_plain(value: Any, where: str) -> Any:
    if isinstance(value, list | tuple):
        if len(value) > 16:
            raise ModelError(f"{where}: expected at most 16 items, found {len(value)}")
        return tuple(_check_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, str) and len(value) <= 64:
        return value
    if type(value) in _PLAIN:
        return _PLAIN[type(value)].check(value, where)
    raise ModelError(f"{where}: expected a number, true/false, a string of at most 64 characters or a list of at most 16, found {_show(value)}")
