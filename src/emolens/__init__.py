"""emolens: recognise the seven basic emotions in faces, from data to deployment.

Heavy modules (torch models, pandas, matplotlib, OpenCV, onnxruntime, FastAPI) are imported
where they are used, so `import emolens` and `emolens --help` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emolens.errors import ConfigError, DataError, EmolensError, ModelError
from emolens.labels import EMOTIONS

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from emolens.models import ModelConfig, create_model, list_models, load_model, save_model  # noqa: F401
    from emolens.pipeline import EmotionRecognizer  # noqa: F401

_LAZY = {
    "create_model": "emolens.models",
    "list_models": "emolens.models",
    "load_model": "emolens.models",
    "save_model": "emolens.models",
    "ModelConfig": "emolens.models",
    "PreprocessConfig": "emolens.preprocessing",
    "FaceDataset": "emolens.data",
    "EmotionRecognizer": "emolens.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["EMOTIONS", "ConfigError", "DataError", "EmolensError", "ModelError", "__version__", *_LAZY]
