"""Where the classifier runs: PyTorch, or ONNX through onnxruntime (imported only when used)."""

from emolens.runtime.backends import BACKENDS, Backend, TorchBackend, create_backend
from emolens.runtime.compiled import CompiledModel, compile_model

__all__ = ["BACKENDS", "Backend", "CompiledModel", "OnnxBackend", "TorchBackend", "compile_model", "create_backend", "export_onnx"]


def __getattr__(name: str):
    if name in ("OnnxBackend", "export_onnx", "export_onnx_bytes", "quantize_int8", "load_calibration_faces"):
        from emolens.runtime import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module 'emolens.runtime' has no attribute {name!r}")
