"""`export_model`: a trained emolens model as one self-describing ONNX or TFLite file.

Every format goes the same way: load the model, make an inference copy (`export_copy`), write
the fp32 graph, optionally quantise it to int8, put the model's config in the file
(`emolens.export.metadata`), load the result with its own runtime to check it, and only then
write it, atomically, never over an existing file unless asked. The format modules
(`emolens.runtime.onnx`, `emolens.runtime.tflite`) supply the graph and the quantisation.

int8 is static by default: activations calibrated on real training faces (`--data`), the path
the README's speed and accuracy figures come from. Dynamic int8 (weights only) has to be asked
for (`dynamic=True`): on CPUs without VNNI it runs slower than fp32, so it is never a fallback.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.export.calibration import CALIBRATION_FACES, calibration_faces
from emolens.export.formats import ModelFormat, parse_format
from emolens.export.metadata import NOT_QUANTIZED

# Each format's module and the names in it: fp32(model) -> bytes, int8(bytes, faces | None) ->
# (bytes, method), and the backend class that loads the result (from bytes) to check it.
_FORMATS: dict[ModelFormat, tuple[str, str, str, str]] = {
    ModelFormat.onnx: ("emolens.runtime.onnx", "export_onnx_bytes", "quantize_int8", "OnnxBackend"),
    ModelFormat.tflite: ("emolens.runtime.tflite", "export_tflite_bytes", "quantize_tflite", "TfliteBackend"),
}

NEEDS_FACES = (
    "static int8 calibrates on real faces: pass --data DATASET (any dataset emolens reads, e.g. FER-2013's "
    f"archive.zip; {CALIBRATION_FACES} of its training faces are used), or --dynamic for weight-only int8, "
    "which needs no faces but, as ONNX, runs slower than fp32 on CPUs without VNNI (benchmarks/export.py)"
)


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    format: ModelFormat
    quantization: str  # "none", "static int8, calibrated on 512 faces", "dynamic int8 ..."
    config: Any  # the ModelConfig the file carries

    def describe(self) -> str:
        side, size_mb = self.config.preprocess.input_size, self.path.stat().st_size / 1e6
        kind = "fp32" if self.quantization == NOT_QUANTIZED else self.quantization
        return (
            f"wrote {self.path} ({size_mb:.2f} MB, {kind}); input (B, 1, {side}, {side}) normalised faces, "
            f"output logits over {', '.join(self.config.labels)}"
        )


def _batch_flatten() -> Any:
    """nn.Flatten(1) as a reshape to (-1, features): the same values, but the batch stays a free
    dimension when torch.export traces it (litert-torch cannot lower a flatten of a dynamic batch).
    Built on first use so that importing this module does not import torch."""
    import torch.nn as nn

    class BatchFlatten(nn.Module):
        def forward(self, x: Any) -> Any:  # (B, C, H, W) -> (B, C*H*W)
            return x.reshape(-1, math.prod(x.shape[1:]))

    return BatchFlatten()


def export_copy(model: Any, *, static_flatten: bool = False) -> Any:
    """An eval-mode copy of `model` as exporters want it.

    Each Linear -> BatchNorm1d pair of a Sequential is fused into one Linear: exporters fold
    the conv batch-norms themselves but leave these as BatchNormalization nodes, which int8
    quantisation handles badly (it tries per-channel scales on them). static_flatten replaces
    each nn.Flatten(1) by a reshape that keeps the batch dynamic (`_batch_flatten`, for TFLite).
    """
    import copy
    import itertools

    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    config = getattr(model, "emolens_config", None)
    if config is None:
        raise ModelError("export needs an emolens model with .emolens_config (from load_model or build_model)")
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for a, b in itertools.pairwise(list(seq._modules)):
            lin, bn = seq._modules[a], seq._modules[b]
            if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                seq._modules[a] = fuse_linear_bn_eval(lin, bn)
                seq._modules[b] = nn.Identity()
    if static_flatten:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Flatten) and (child.start_dim, child.end_dim) == (1, -1):
                    setattr(parent, name, _batch_flatten())
    model.emolens_config = config
    return model


def default_output(model: Any, format: ModelFormat, int8: bool) -> Path:
    """MODEL.onnx / MODEL.int8.tflite ... in the current folder, MODEL the model file's stem."""
    stem = Path(model).stem if isinstance(model, str | Path) else getattr(model.emolens_config, "name", "model")
    return Path(f"{stem}{'.int8' if int8 else ''}{format.suffix}")


def _check_output(path: Path, format: ModelFormat, overwrite: bool) -> Path:
    if path.suffix != format.suffix:
        raise ConfigError(f"{path}: an {format.name.upper()} model file must end in {format.suffix}")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; choose another --output or pass --overwrite")
    return path


def _check_int8_request(int8: bool, calibration: Any, dynamic: bool) -> None:
    """Static int8 needs faces, dynamic int8 takes none; checked before any slow work."""
    if dynamic and not int8:
        raise ConfigError("dynamic=True (--dynamic) is a kind of int8: pass it with int8=True (--int8)")
    if dynamic and calibration is not None:
        raise ConfigError("dynamic int8 calibrates nothing: pass either calibration faces (--data) or --dynamic, not both")
    if int8 and not dynamic and calibration is None:
        raise ConfigError(NEEDS_FACES)


def export_model(
    model: Any = None, output: str | Path | None = None, *, format: ModelFormat | str = ModelFormat.onnx, int8: bool = False,
    calibration: np.ndarray | str | Path | None = None, dynamic: bool = False, overwrite: bool = False, **options: Any,
) -> ExportedModel:
    """Write `model` (an nn.Module, a model file or run folder, or None for the shipped default)
    as `format`, to `output` (default: `default_output`).

    int8=True quantises it, statically on `calibration` (a dataset path: its training faces;
    or uint8 faces (N, S, S)); dynamic=True instead quantises the weights only. `options` go to
    the format's fp32 writer (ONNX: opset). Example::

        export_model(None, "m.int8.tflite", format="tflite", int8=True, calibration="archive.zip")
    """
    import torch

    fmt = parse_format(ModelFormat, format)
    module_name, fp32_name, int8_name, backend_name = _FORMATS[fmt]
    module = importlib.import_module(module_name)
    module.require_export_extra()  # before minutes of calibration or model loading
    _check_int8_request(int8, calibration, dynamic)
    from emolens.models import load_model, resolve_model_path
    from emolens.models.io import atomic_write_bytes

    if not isinstance(model, torch.nn.Module):
        model = resolve_model_path(model)  # a path, which names the default output
    path = _check_output(Path(output) if output is not None else default_output(model, fmt, int8), fmt, overwrite)
    if not isinstance(model, torch.nn.Module):
        model = load_model(model)
    faces = calibration_faces(calibration, model.emolens_config.preprocess) if int8 else None
    data = getattr(module, fp32_name)(model, **options)
    if int8:
        data, _ = getattr(module, int8_name)(data, faces)
    check = getattr(module, backend_name)(data, source=str(path))  # the file must load and describe itself
    atomic_write_bytes(path, data)
    return ExportedModel(path=path, format=fmt, quantization=check.quantization, config=check.config)
