"""Where the classifier runs: PyTorch, ONNX through onnxruntime, or TFLite through LiteRT (imported only when used)."""

from emolens.runtime.backends import BACKENDS, Backend, BackendName, TorchBackend, create_backend

__all__ = [
    "BACKENDS", "Backend", "BackendName", "CompiledModel", "OnnxBackend", "TfliteBackend", "TorchBackend", "compile_model",
    "create_backend", "export_onnx",
]

# Lazy: these import torch or onnxruntime, and the CLI imports this package for its option lists.
_LAZY = {
    "CompiledModel": "emolens.runtime.compiled", "compile_model": "emolens.runtime.compiled",
    "OnnxBackend": "emolens.runtime.onnx", "export_onnx": "emolens.runtime.onnx", "export_onnx_bytes": "emolens.runtime.onnx",
    "quantize_int8": "emolens.runtime.onnx", "TfliteBackend": "emolens.runtime.tflite",
    "load_calibration_faces": "emolens.export.calibration",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens.runtime' has no attribute {name!r}")
