"""ONNX export and the onnxruntime backend.

The graph takes normalised faces (B, 1, I, I) and returns logits (B, C); normalisation
(`emolens.preprocessing.normalize`) and the temperature softmax stay outside it, so both are
defined once and the ONNX and PyTorch backends cannot drift apart. The model's `ModelConfig`
is stored as JSON in the ONNX metadata (`emolens.export.metadata`), so an .onnx file describes
itself: labels, input size, mean/std, face margin, temperature.

int8 uses onnxruntime's quantisation: static (QDQ, per-channel 7-bit weights, activations
calibrated on real faces) when calibration faces are given, else dynamic (weights only).
Writing files, and which of the two to use, is `emolens.export.export_model`'s job.

The export of a model file for `--backend onnx` (and "auto") takes about 1.5 s, so it is done
once per model file and kept in `emolens.paths.cache_dir()/onnx` (`cached_onnx_backend`): the
entry's name hashes the file's bytes, the opset and the torch, onnx and emolens versions, so
an edited model or a new exporter never meets a stale entry. An entry onnxruntime cannot load
is exported again; a cache that cannot be written only costs the next run its export.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ModelError
from emolens.export.metadata import NOT_QUANTIZED, QUANT_KEY, config_from_metadata, metadata_entries, model_bytes
from emolens.extras import import_extra, require_extra
from emolens.paths import CACHE_ENV, cache_dir, write_cache_entry
from emolens.runtime.backends import ExportedBackend

FORMAT = "ONNX"
INPUT_NAME, OUTPUT_NAME = "faces", "logits"
OPSET = 17
EXPORT_PURPOSE = "ONNX export (emolens export, --backend onnx)"
RUN_PURPOSE = "the ONNX backend (--backend onnx, an .onnx --model)"
CACHE_FOLDER = "onnx"  # under emolens.paths.cache_dir()
# What the exported bytes depend on besides the model file and the opset. Read from the
# installed distributions, so that a cache hit needs no torch import to build the key.
_EXPORTERS = ("torch", "onnx", "emolens")


def require_export_extra() -> None:
    require_extra("onnx", EXPORT_PURPOSE)


def export_onnx_bytes(model: Any, *, opset: int = OPSET) -> bytes:
    """A PyTorch emolens model as a serialised fp32 ONNX model with dynamic batch size."""
    import io

    import torch

    from emolens.export.model import export_copy

    onnx = import_extra("onnx", "onnx", EXPORT_PURPOSE)  # torch.onnx.export needs it too
    model = export_copy(model)
    config = model.emolens_config
    size = config.preprocess.input_size
    dummy = torch.zeros(1, 1, size, size)
    buf = io.BytesIO()
    # dynamo=False: the TorchScript exporter needs no onnxscript and handles these small CNNs
    # fully; its deprecation notice is for PyTorch developers, not for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (dummy,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    _set_metadata(proto, config.to_dict(), quantization=NOT_QUANTIZED)
    return proto.SerializeToString()


def _set_metadata(proto: Any, config: dict[str, Any], quantization: str) -> None:
    entries = metadata_entries(config, quantization)
    keep = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "emolens"


class _Calibration:
    """onnxruntime CalibrationDataReader over normalised faces, in batches."""

    def __init__(self, faces: np.ndarray, preprocess: Any, batch: int = 64):
        from emolens.preprocessing import normalize_array

        self._batches = [normalize_array(faces[i : i + batch], preprocess) for i in range(0, len(faces), batch)]
        self._it = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def quantize_int8(fp32: bytes, calibration: np.ndarray | None = None) -> tuple[bytes, str]:
    """int8 version of a serialised fp32 emolens ONNX model; returns (bytes, method).

    Static when `calibration` faces (uint8 (N, S, S)) are given, else dynamic (weights only).
    """
    require_extra("onnx", "int8 quantisation (emolens export --int8)")
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from emolens.export.calibration import check_calibration_faces

    proto = onnx.load_from_string(fp32)
    config = config_from_metadata({p.key: p.value for p in proto.metadata_props}, "<exported model>", FORMAT)
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if calibration is not None:
            faces = check_calibration_faces(calibration)
            # reduce_range (7-bit weights): CPUs without VNNI (AVX2, like this project's 2-core
            # reference machine) multiply u8 x s8 pairs into int16 with saturation, which cost
            # 2.5 points of FER-2013 validation accuracy at 8 bits and 0.03 points at 7.
            quantize_static(
                str(pre), str(dst), _Calibration(faces, config.preprocess),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )
            method = f"static int8, calibrated on {len(faces)} faces"
        else:
            # Asked for explicitly (export_model never falls back to it): weights only, activations dynamic.
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QUInt8, reduce_range=True)
            method = "dynamic int8 (weights only, no calibration)"
        out = onnx.load(str(dst))
    _set_metadata(out, config.to_dict(), quantization=method)
    return out.SerializeToString(), method


def export_onnx(
    model: Any, path: str | Path, *, int8: bool = False, calibration: np.ndarray | str | Path | None = None,
    dynamic: bool = False, overwrite: bool = False, opset: int = OPSET,
) -> Path:
    """Write `model` (an nn.Module, a model file or None for the shipped default) as ONNX.

    `emolens.export.export_model` with format="onnx": int8=True quantises it, statically on
    `calibration` faces (uint8 (N, S, S), or a dataset, whose training faces are used), or
    with dynamic=True weights only. Never replaces an existing file unless overwrite=True.
    """
    from emolens.export.model import export_model

    return export_model(
        model, path, format="onnx", int8=int8, calibration=calibration, dynamic=dynamic, overwrite=overwrite, opset=opset,
    ).path


def _check_io(session: Any, config: Any, label: str) -> None:
    """The graph must take (B, 1, I, I) float faces and give (B, C) logits, as its config says.

    Checked at load so that a mismatched file fails once, here, rather than on every request.
    """
    side, n = config.preprocess.input_size, len(config.labels)
    inputs, outputs = session.get_inputs(), {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or OUTPUT_NAME not in outputs:
        found = f"inputs {[i.name for i in inputs]}, outputs {list(outputs)}"
        raise ModelError(f"{label}: graph has {found}; expected one input {INPUT_NAME!r} and an output {OUTPUT_NAME!r} (export with `emolens export`)")
    x, y = inputs[0], outputs[OUTPUT_NAME]
    # A named dimension ("batch") is dynamic. The batch must be, since requests carry any number
    # of faces; the others may be, or else must equal what the config says.
    fits = len(x.shape) == 4 and not isinstance(x.shape[0], int) and all(
        not isinstance(d, int) or d == e for d, e in zip(x.shape[1:], (1, side, side), strict=True)
    )
    if x.type != "tensor(float)" or not fits:
        raise ModelError(
            f"{label}: input {INPUT_NAME!r} is {x.type} {list(x.shape)}; its config (preprocess.input_size {side}) "
            f"needs tensor(float) [batch, 1, {side}, {side}] with a dynamic batch (export with `emolens export`)"
        )
    if len(y.shape) != 2 or (isinstance(y.shape[1], int) and y.shape[1] != n):
        raise ModelError(f"{label}: output {OUTPUT_NAME!r} is {list(y.shape)}; its config's {n} labels need [batch, {n}]")


class OnnxBackend(ExportedBackend):
    """Runs an emolens ONNX model (file path or bytes) with onnxruntime on the CPU."""

    name = "onnx"

    def __init__(self, model: str | Path | bytes, *, source: str | None = None, threads: int | None = None, batch_size: int = 256):
        from emolens.runtime.devices import session_threads

        ort = import_extra("onnxruntime", "onnx", RUN_PURPOSE)
        label, data = model_bytes(model, FORMAT, source)
        opts = ort.SessionOptions()
        intra, inter = session_threads(threads)  # the process's plan (capped when serving), or threads
        opts.intra_op_num_threads, opts.inter_op_num_threads = intra or 0, inter or 0  # 0: onnxruntime's default
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{label}: onnxruntime could not load this model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config = config_from_metadata(meta, label, FORMAT)
        _check_io(self.session, self.config, label)
        self.quantization = meta.get(QUANT_KEY, NOT_QUANTIZED)
        self.source = label
        self.batch_size = batch_size

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _installed(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "none"


def export_cache_path(model_file: str | Path, *, opset: int = OPSET) -> Path | None:
    """Where the ONNX export of `model_file` is cached, or None when it is not a readable regular
    file (loading it then names the problem; a FIFO is never opened, so it cannot hang the hash)."""
    path = Path(model_file)
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None
    parts = [f"model={digest}", f"opset={opset}", *(f"{d}={_installed(d)}" for d in _EXPORTERS)]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
    return cache_dir() / CACHE_FOLDER / f"{key}.onnx"


def _read_entry(entry: Path) -> bytes | None:
    try:
        return entry.read_bytes() if entry.is_file() else None
    except OSError:  # unreadable: export again
        return None


def _write_entry(entry: Path, data: bytes) -> None:
    """Write atomically (`emolens.paths.write_cache_entry`); a failure only warns."""
    try:
        write_cache_entry(entry, data)
    except OSError as exc:
        warnings.warn(f"could not cache the ONNX export at {entry} ({exc}); set {CACHE_ENV} to a writable folder", stacklevel=3)


def cached_onnx_backend(
    model_file: str | Path, load: Callable[[], Any], *, threads: int | None = None, opset: int = OPSET,
) -> OnnxBackend:
    """An OnnxBackend for a .safetensors model file, exported once and then read from the cache.

    `load()` returns the PyTorch model of `model_file`; it is called only when the cache has no
    usable entry, so a cache hit loads neither the weights nor the exporter.
    """
    source = str(model_file)
    entry = export_cache_path(model_file, opset=opset)
    data = _read_entry(entry) if entry is not None else None
    if data is not None:
        try:
            return OnnxBackend(data, source=source, threads=threads)
        except ModelError:
            pass  # damaged (a torn disk write, a foreign file): exported again and replaced below
    data = export_onnx_bytes(load(), opset=opset)
    if entry is not None:
        _write_entry(entry, data)
    return OnnxBackend(data, source=source, threads=threads)
