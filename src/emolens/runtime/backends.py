"""Classifier backends: uint8 face crops (B, S, S) in, probabilities (B, C) out.

`TorchBackend` runs the safetensors model through `emolens.inference.predict_proba`;
`OnnxBackend` (emolens.runtime.onnx) runs an exported graph with onnxruntime. Both take the
same crops and share `emolens.preprocessing.normalize` and the same temperature softmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emolens.errors import ConfigError

BACKENDS: tuple[str, ...] = ("torch", "onnx")


class Backend(Protocol):
    name: str
    config: Any  # emolens.models.ModelConfig
    source: str  # file it was loaded from, or "<in memory>"

    def predict_proba(self, faces: np.ndarray) -> np.ndarray: ...


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class TorchBackend:
    name = "torch"

    def __init__(
        self, model: Any, *, device: str = "cpu", tta: str = "none", source: str = "<in memory>", threads: int | None = None,
        compile: bool = False,
    ):
        import torch

        if threads:
            # Process-wide in PyTorch. One thread is faster for the few faces of a frame, and
            # two threads spinning on a busy 2-core machine can be ten times slower.
            torch.set_num_threads(threads)

        if not isinstance(model, torch.nn.Module) or not hasattr(model, "emolens_config"):
            raise ConfigError("TorchBackend needs an emolens model (an nn.Module with .emolens_config), e.g. from load_model()")
        self.model = model.to(device).eval()
        if compile:
            from emolens.runtime.compiled import compile_model

            self.model = compile_model(self.model)  # compiles on the first large batch
        self.config = model.emolens_config
        self.tta = tta
        self.source = source

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        from emolens.inference import predict_proba

        return predict_proba(self.model, faces, tta=self.tta)


def create_backend(
    model: Any = None, backend: str = "torch", *, device: str = "cpu", tta: str = "none", threads: int | None = None,
    compile: bool = False,
) -> Backend:
    """A backend from a model file (.safetensors or .onnx), a folder, None (the shipped model),
    a loaded nn.Module, or an existing backend.

    backend="onnx" with a PyTorch model exports it to ONNX in memory first (about a second);
    "auto" picks onnx when onnxruntime is installed (faster for the few faces of a video frame). threads: CPU
    threads for inference (None: the library's default). compile: run the torch backend through
    `torch.compile` (emolens.runtime.compiled): about 2x the batch throughput after 10-40 s.
    """
    import torch

    if backend == "auto":
        backend = "onnx" if tta == "none" and onnx_available() else "torch"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)} or auto")
    if hasattr(model, "predict_proba") and hasattr(model, "config"):
        return model
    if isinstance(model, str | Path) and Path(model).suffix == ".onnx":
        from emolens.runtime.onnx import OnnxBackend

        if tta != "none":
            raise ConfigError("test-time augmentation runs on the torch backend only; use tta='none' with an .onnx model")
        return OnnxBackend(model, threads=threads)
    if backend == "onnx":
        from emolens.extras import require_extra

        require_extra("onnx", "--backend onnx")  # before the PyTorch model is loaded for nothing
    if isinstance(model, torch.nn.Module):
        net, source = model, "<in memory>"
    else:
        from emolens.models import load_model, resolve_model_path

        source = str(resolve_model_path(model))
        net = load_model(source, device=device)
    if backend == "onnx":
        from emolens.runtime.onnx import OnnxBackend, export_onnx_bytes

        if tta != "none":
            raise ConfigError("test-time augmentation runs on the torch backend only; use tta='none' with backend='onnx'")
        return OnnxBackend(export_onnx_bytes(net), source=source, threads=threads)
    return TorchBackend(net, device=device, tta=tta, source=source, threads=threads, compile=compile)
