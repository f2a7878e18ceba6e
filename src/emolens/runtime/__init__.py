"""Where the classifier runs: PyTorch, or ONNX through onnxruntime (imported only when used)."""

from emolens.runtime.backends import BACKENDS, Backend, TorchBackend, create_backend

__all__ = ["BACKENDS", "Backend", "OnnxBackend", "TorchBackend", "create_backend", "export_onnx"]


def __getattr__(name: str):
    if name in ("OnnxBackend", "export_onnx", "export_onnx_bytes", "quantize_int8", "load_calibration_faces"):
        from emolens.runtime import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module 'emolens.runtime' has no attribute {name!r}")
