"""A timm-style registry: `@register_model` entry points, `create_model`, `list_models`."""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from difflib import get_close_matches
from typing import TYPE_CHECKING

from emolens.errors import ModelError

if TYPE_CHECKING:
    import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# Families of external models named "PREFIX:NAME" (e.g. "timm:resnet18"), built by factory(NAME, **kwargs).
_FAMILIES: dict[str, Callable[..., nn.Module]] = {}


# emolens's own architectures, registered when their module is imported: on first use of the registry.
_BUILT_IN = ("emolens.models.resnet", "emolens.models.simple_cnn", "emolens.models.timm_adapter", "emolens.models.vgg")
_built_in_loaded = False


def _load_built_in() -> None:
    global _built_in_loaded
    if not _built_in_loaded:
        _built_in_loaded = True
        for module in _BUILT_IN:
            importlib.import_module(module)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register an entry point under its function name. Entry points take keyword args only."""
    _load_built_in()  # first, so a user's name that clashes with a built-in one fails here, not later
    if fn.__name__ in _REGISTRY:
        raise ModelError(f"model {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def register_family(prefix: str, factory: Callable[..., nn.Module]) -> None:
    """Build every model named "PREFIX:NAME" with factory(NAME, **kwargs), e.g. "timm:resnet18"."""
    _load_built_in()
    if prefix in _FAMILIES:
        raise ModelError(f"model family {prefix!r} is registered twice")
    _FAMILIES[prefix] = factory


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a shell-style pattern, sorted."""
    _load_built_in()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def check_arch(name: str) -> None:
    """ModelError with close matches unless `name` is registered or of a registered family.

    A family's own names (timm's) are checked by its factory, which needs the package.
    """
    _load_built_in()
    prefix, sep, _ = name.partition(":")
    if (sep and prefix in _FAMILIES) or name in _REGISTRY:
        return
    close = get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    families = "".join(f", {p}:NAME" for p in sorted(_FAMILIES))
    raise ModelError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}{families}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build an untrained model by name, e.g. ``create_model("resnet_fer", num_classes=7)``."""
    check_arch(name)
    prefix, sep, sub = name.partition(":")
    if sep and prefix in _FAMILIES:
        return _FAMILIES[prefix](sub, **kwargs)
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r} does not accept these arguments {sorted(kwargs)}: {exc}") from None
