"""Model architectures (one file per family), the registry and pickle-free model files.

Imported lazily: `emolens.models.config` (what a model file says about itself, and where model
files are) needs no PyTorch, so that an exported model runs and the CLI starts without it; the
names below that build or load networks import torch when first used, and the registry loads
the architectures of `emolens.models.resnet`, `simple_cnn`, `vgg` and `timm_adapter` when first asked.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ModelConfig": "emolens.models.config", "default_model_path": "emolens.models.config",
    "resolve_model_path": "emolens.models.config", "add_class_bias": "emolens.models.io",
    "build_model": "emolens.models.io", "load_model": "emolens.models.io", "read_model_config": "emolens.models.io",
    "save_model": "emolens.models.io", "create_model": "emolens.models.registry", "list_models": "emolens.models.registry",
    "register_family": "emolens.models.registry", "register_model": "emolens.models.registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
