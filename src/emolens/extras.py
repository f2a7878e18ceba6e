"""Optional extras: import a package of one, or say which `pip install` brings it.

The plain install leaves out the server (`serve`: FastAPI, uvicorn) and ONNX (`onnx`: onnx,
onnxruntime); a command that needs one fails with the install line, as timm and Ultralytics do,
instead of a ModuleNotFoundError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from emolens.errors import ConfigError

# The modules each extra of pyproject.toml provides, in the order they are needed.
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn"),
    "onnx": ("onnx", "onnxruntime"),
    "tflite": ("litert_torch", "ai_edge_quantizer", "ai_edge_litert.interpreter"),
}


def extra_available(extra: str) -> bool:
    """Whether every module of `extra` is installed (found, not imported: this stays cheap)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in EXTRAS[extra])
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """`module`, or ConfigError saying that `purpose` needs `pip install 'emolens[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs the optional extra: pip install 'emolens[{extra}]' (importing {module} failed: {exc})"
        ) from None


def require_extra(extra: str, purpose: str) -> None:
    """Fail now, before any slow work, when a module of `extra` is not installed (found, not
    imported: onnx alone takes a second to import, and a cached ONNX export never needs it; a
    module installed but broken fails where it is imported, through `import_extra`)."""
    if not extra_available(extra):
        for module in EXTRAS[extra]:
            import_extra(module, extra, purpose)  # the first missing one raises with the install line
