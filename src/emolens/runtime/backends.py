"""Classifier backends: uint8 face crops (B, S, S) in, probabilities (B, C) out.

`TorchBackend` runs the safetensors model through `emolens.inference.predict_proba`;
`OnnxBackend` (emolens.runtime.onnx) runs an exported graph with onnxruntime, `TfliteBackend`
(emolens.runtime.tflite) a .tflite file with the LiteRT interpreter. All take the same crops
and share one normalisation (`emolens.preprocessing.normalize`, `normalize_array` its numpy form,
the same numbers) and the same temperature softmax.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emolens.errors import ConfigError


class BackendName(StrEnum):
    """What `backend=` (`--backend`) takes: the one list, for create_backend and the CLI."""

    auto = "auto"  # onnx where onnxruntime is installed and the model runs on the CPU, else torch
    torch = "torch"
    onnx = "onnx"


BACKENDS: tuple[str, ...] = tuple(b.value for b in BackendName if b is not BackendName.auto)  # the real ones


class Backend(Protocol):
    name: str
    config: Any  # emolens.models.ModelConfig
    source: str  # file it was loaded from, or "<in memory>"

    def predict_proba(self, faces: np.ndarray) -> np.ndarray: ...


class ExportedBackend:
    """What the ONNX and TFLite backends share: batches of normalised faces through `_run`
    (normalised faces (B, 1, I, I) float32 -> logits (B, C)), then the temperature softmax."""

    config: Any
    batch_size: int = 256

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_logits(self, faces: np.ndarray) -> np.ndarray:
        from emolens.preprocessing import normalize_array

        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        out = [self._run(normalize_array(faces[i : i + self.batch_size], self.config.preprocess)) for i in range(0, len(faces), self.batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(self.config.labels)), np.float32)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        from emolens.evaluation.calibration import softmax_with_temperature

        return softmax_with_temperature(self.predict_logits(faces), self.config.temperature)


def onnx_available() -> bool:
    from emolens.extras import extra_available

    return extra_available("onnx")


class TorchBackend:
    name = "torch"

    def __init__(
        self, model: Any, *, device: str = "cpu", tta: str = "none", source: str = "<in memory>", compile: bool = False,
    ):
        import torch

        from emolens.runtime.devices import resolve_device

        if not isinstance(model, torch.nn.Module) or not hasattr(model, "emolens_config"):
            raise ConfigError("TorchBackend needs an emolens model (an nn.Module with .emolens_config), e.g. from load_model()")
        self.model = model.to(resolve_device(device)).eval()
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
    """A backend from a model file (.safetensors, .onnx or .tflite), a folder, None (the shipped model),
    a loaded nn.Module, or an existing backend.

    backend="onnx" with a PyTorch model exports it to ONNX first (about 1.5 s); a model file's
    export is cached on disk (`emolens.runtime.onnx.cached_onnx_backend`), an nn.Module's is not.
    "auto" picks onnx when onnxruntime is installed and the model runs on the CPU (faster for
    the few faces of a video frame). device: "auto" (a CUDA GPU when there is one), "cpu",
    "cuda" or "cuda:N" (`emolens.runtime.devices.resolve_device`); onnxruntime runs on the CPU.
    threads: CPU threads for inference, None for the process's plan: an onnxruntime session
    takes them as its own; for PyTorch, whose count is process-wide, this calls
    `emolens.runtime.devices.configure_threads(threads)`, the one place threads are set.
    compile: run the torch backend through `torch.compile` (emolens.runtime.compiled): about
    2x the batch throughput after 10-40 s.
    """
    from emolens.runtime.devices import runs_on_cpu

    if backend not in set(BackendName):
        raise ConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)} or auto")
    if hasattr(model, "predict_proba") and hasattr(model, "config"):
        return model
    if backend == "auto":
        backend = "onnx" if tta == "none" and runs_on_cpu(device) and onnx_available() else "torch"
    is_file = model is None or isinstance(model, str | Path)
    if is_file and Path(str(model)).suffix in (".onnx", ".tflite"):
        return _exported_file_backend(Path(str(model)), tta, threads)
    if backend == "onnx":
        from emolens.extras import require_extra

        require_extra("onnx", "--backend onnx")  # before the PyTorch model is loaded for nothing
        if tta != "none":
            raise ConfigError("test-time augmentation runs on the torch backend only; use tta='none' with backend='onnx'")
    if is_file:
        from emolens.models.config import resolve_model_path

        source = str(resolve_model_path(model))
        if backend == "onnx":  # a model file: its export is cached, and PyTorch is loaded only on a miss
            from emolens.runtime.onnx import cached_onnx_backend

            return cached_onnx_backend(source, lambda: _load_model(source, "cpu"), threads=threads)
        net = _load_model(source, device)
    else:
        net, source = _torch_module(model), "<in memory>"
    if backend == "onnx":
        from emolens.runtime.onnx import OnnxBackend, export_onnx_bytes

        return OnnxBackend(export_onnx_bytes(net), source=source, threads=threads)
    if threads is not None:
        from emolens.runtime.devices import configure_threads

        configure_threads(threads)
    return TorchBackend(net, device=device, tta=tta, source=source, compile=compile)


def _exported_file_backend(path: Path, tta: str, threads: int | None) -> Backend:
    if tta != "none":
        raise ConfigError(f"test-time augmentation runs on the torch backend only; use tta='none' with a {path.suffix} model")
    if path.suffix == ".onnx":
        from emolens.runtime.onnx import OnnxBackend

        return OnnxBackend(path, threads=threads)
    from emolens.runtime.tflite import TfliteBackend

    return TfliteBackend(path, threads=threads)


def _load_model(source: str, device: str) -> Any:
    from emolens.models.io import load_model
    from emolens.runtime.devices import resolve_device

    return load_model(source, device=resolve_device(device))


def _torch_module(model: Any) -> Any:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"model must be a model file, a folder, a shipped model's name, None (the shipped default) or a loaded model; got {type(model).__name__}"
        )
    return model
