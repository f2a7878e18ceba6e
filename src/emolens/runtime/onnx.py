"""ONNX export and the onnxruntime backend.

The graph takes normalised faces (B, 1, I, I) and returns logits (B, C); normalisation
(`emolens.preprocessing.normalize`) and the temperature softmax stay outside it, so both are
defined once and the ONNX and PyTorch backends cannot drift apart. The model's `ModelConfig`
is stored as JSON in the ONNX metadata (key "emolens_config"), so an .onnx file describes
itself: labels, input size, mean/std, face margin, temperature.

int8 uses onnxruntime's quantisation: static (QDQ, per-channel 7-bit weights, activations
calibrated on real faces) when calibration faces are given, else dynamic.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError, ModelError
from emolens.extras import import_extra, require_extra

META_KEY = "emolens_config"
QUANT_KEY = "emolens_quantization"
INPUT_NAME, OUTPUT_NAME = "faces", "logits"
OPSET = 17
EXPORT_PURPOSE = "ONNX export (emolens export, --backend onnx)"
RUN_PURPOSE = "the ONNX backend (--backend onnx, an .onnx --model)"


def _fold_batchnorm(model: Any) -> Any:
    """A copy of `model` with each Linear -> BatchNorm1d pair of a Sequential fused into one
    Linear. The exporter folds conv batch-norms itself but leaves these as BatchNormalization
    nodes, which int8 quantisation handles badly (it tries per-channel scales on them)."""
    import copy
    import itertools

    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            lin, bn = seq._modules[a], seq._modules[b]
            if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                seq._modules[a] = fuse_linear_bn_eval(lin, bn)
                seq._modules[b] = nn.Identity()
    return model


def export_onnx_bytes(model: Any, *, opset: int = OPSET) -> bytes:
    """A PyTorch emolens model as a serialised fp32 ONNX model with dynamic batch size."""
    import io

    import torch

    onnx = import_extra("onnx", "onnx", EXPORT_PURPOSE)  # torch.onnx.export needs it too
    config = getattr(model, "emolens_config", None)
    if config is None:
        raise ModelError("export needs an emolens model with .emolens_config (from load_model or build_model)")
    model = _fold_batchnorm(model)
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
    _set_metadata(proto, config.to_dict(), quantization="none")
    return proto.SerializeToString()


def _set_metadata(proto: Any, config: dict[str, Any], quantization: str) -> None:
    keep = [p for p in proto.metadata_props if p.key not in (META_KEY, QUANT_KEY)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in ((META_KEY, json.dumps(config, sort_keys=True)), (QUANT_KEY, quantization)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "emolens"


class _Calibration:
    """onnxruntime CalibrationDataReader over normalised faces, in batches."""

    def __init__(self, faces: np.ndarray, preprocess: Any, batch: int = 64):
        from emolens.preprocessing import normalize

        self._batches = [normalize(faces[i : i + batch], preprocess).numpy() for i in range(0, len(faces), batch)]
        self._it = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def quantize_int8(fp32: bytes, calibration: np.ndarray | None = None) -> tuple[bytes, str]:
    """int8 version of a serialised fp32 emolens ONNX model; returns (bytes, method)."""
    require_extra("onnx", "int8 quantisation (emolens export --int8)")
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from emolens.models import ModelConfig

    proto = onnx.load_from_string(fp32)
    config = _config_from_proto(proto, "<exported model>")
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if calibration is not None and len(calibration):
            faces = np.asarray(calibration)
            if faces.ndim != 3 or faces.dtype != np.uint8:
                raise DataError(f"calibration faces must be uint8 (N, S, S), got {faces.dtype} {faces.shape}")
            # reduce_range (7-bit weights): CPUs without VNNI (AVX2, like this project's 2-core
            # reference machine) multiply u8 x s8 pairs into int16 with saturation, which cost
            # 2.5 points of FER-2013 validation accuracy at 8 bits and 0.03 points at 7.
            quantize_static(
                str(pre), str(dst), _Calibration(faces, ModelConfig.from_dict(config).preprocess),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )
            method = f"static int8, calibrated on {len(faces)} faces"
        else:
            # Without faces to calibrate on, quantise weights only; activations stay dynamic.
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QUInt8, reduce_range=True)
            method = "dynamic int8 (no calibration faces)"
        out = onnx.load(str(dst))
    _set_metadata(out, config, quantization=method)
    return out.SerializeToString(), method


def load_calibration_faces(source: str | Path, preprocess: Any, limit: int = 512) -> np.ndarray:
    """Up to `limit` face crops (N, S, S) uint8 from a folder of face images or a dataset zip.

    In a FER-2013 style zip only training images are used (paths under train/ or named
    Training_*), so calibration never sees test faces. Images are taken evenly across the
    sorted file list, which spreads them over the class folders.
    """
    import zipfile

    from emolens.preprocessing import load_image, prepare_face

    exts = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
    source = Path(source)
    faces: list[np.ndarray] = []
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            names = sorted(n for n in zf.namelist() if n.lower().endswith(exts))
            train = [n for n in names if "/train/" in f"/{n.lower()}" or "training_" in n.lower()]
            names = train or names
            for n in names[:: max(1, len(names) // limit)][:limit]:
                faces.append(prepare_face(load_image(zf.read(n), name=f"{source}:{n}"), preprocess))
    elif source.is_dir():
        names = sorted(p for p in source.rglob("*") if p.suffix.lower() in exts)
        for p in names[:: max(1, len(names) // limit)][:limit]:
            try:
                faces.append(prepare_face(p, preprocess))
            except DataError:
                continue
    else:
        raise DataError(f"{source}: calibration data must be a folder of face images or a .zip of them")
    if not faces:
        raise DataError(f"{source}: holds no readable face images for calibration")
    return np.stack(faces)


def export_onnx(
    model: Any, path: str | Path, *, int8: bool = False, calibration: np.ndarray | str | Path | None = None,
    overwrite: bool = False, opset: int = OPSET,
) -> Path:
    """Write `model` (an nn.Module, a model file or None for the shipped default) as ONNX.

    int8=True quantises it, statically when `calibration` faces (uint8 (N, S, S), or a folder /
    zip of face images) are given. Never replaces an existing file unless overwrite=True.
    """
    import torch

    require_extra("onnx", EXPORT_PURPOSE)  # before minutes of calibration or model loading
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: an ONNX model file must end in .onnx")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; choose another --output or pass --overwrite")
    if not isinstance(model, torch.nn.Module):
        from emolens.models import load_model

        model = load_model(model)
    data = export_onnx_bytes(model, opset=opset)
    if int8:
        if isinstance(calibration, str | Path):
            calibration = load_calibration_faces(calibration, model.emolens_config.preprocess)
        data, _ = quantize_int8(data, calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _config_from_proto(proto: Any, label: str) -> dict[str, Any]:
    from emolens.models.io import config_from_json

    meta = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in meta:
        raise ModelError(f"{label}: ONNX model carries no emolens config; export it with `emolens export --format onnx`")
    return config_from_json(meta[META_KEY], label).to_dict()


def _read_onnx(path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular file of at most MAX_MODEL_BYTES."""
    from emolens.models.io import MAX_MODEL_BYTES

    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX model file" if not path.exists() else f"{path}: not a regular file; expected an .onnx model file")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: file is {size / 2**20:.0f} MiB, more than the {MAX_MODEL_BYTES / 2**20:.0f} MiB a model file may hold")
    return path.read_bytes()


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


class OnnxBackend:
    """Runs an emolens ONNX model (file path or bytes) with onnxruntime on the CPU."""

    name = "onnx"

    def __init__(self, model: str | Path | bytes, *, source: str | None = None, threads: int | None = None, batch_size: int = 256):
        from emolens.models.io import config_from_json
        from emolens.runtime.devices import session_threads

        ort = import_extra("onnxruntime", "onnx", RUN_PURPOSE)
        if isinstance(model, bytes):
            label, data = source or "<in memory>", model
        else:
            label, data = str(model), _read_onnx(Path(model))
        opts = ort.SessionOptions()
        intra, inter = session_threads(threads)  # the process's plan (capped when serving), or threads
        opts.intra_op_num_threads, opts.inter_op_num_threads = intra or 0, inter or 0  # 0: onnxruntime's default
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{label}: onnxruntime could not load this model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in meta:
            raise ModelError(f"{label}: ONNX model carries no emolens config; export it with `emolens export --format onnx`")
        self.config = config_from_json(meta[META_KEY], label)
        _check_io(self.session, self.config, label)
        self.quantization = meta.get(QUANT_KEY, "none")
        self.source = label
        self.batch_size = batch_size

    def predict_logits(self, faces: np.ndarray) -> np.ndarray:
        from emolens.preprocessing import normalize

        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        out = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: normalize(faces[i : i + self.batch_size], self.config.preprocess).numpy()})[0]
            for i in range(0, len(faces), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(self.config.labels)), np.float32)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        from emolens.inference import softmax_with_temperature

        return softmax_with_temperature(self.predict_logits(faces), self.config.temperature)
