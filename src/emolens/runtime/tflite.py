"""TFLite export and the LiteRT backend, with no TensorFlow anywhere.

`litert-torch` (Google's PyTorch -> LiteRT converter, formerly ai-edge-torch) converts the model,
`ai-edge-quantizer` (which it installs) makes the int8 file, and the LiteRT interpreter
(`ai-edge-litert`) runs it: the `tflite` extra. The graph is the ONNX one: normalised faces
(B, 1, I, I) in, logits (B, C) out, with a dynamic batch; normalisation and the temperature
softmax stay outside it, in `emolens.preprocessing.normalize_array` and `emolens.evaluation.calibration`.

The int8 file is fully integer, as phones' accelerators want it: its input and output are int8
tensors whose scale and zero point the file records (`TfliteBackend` applies them). Static int8
calibrates every activation on real training faces (`emolens.export.calibration`).

The model's config travels inside the file as named flatbuffer metadata
(`emolens.export.metadata`), read and checked when the file is loaded.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ModelError
from emolens.export.metadata import NOT_QUANTIZED, QUANT_KEY, config_from_metadata, metadata_entries, model_bytes
from emolens.extras import import_extra, require_extra
from emolens.runtime.backends import ExportedBackend

FORMAT = "TFLite"
SIGNATURE, INPUT_NAME, OUTPUT_NAME = "serving_default", "faces", "logits"
EXPORT_PURPOSE = "TFLite export (emolens export --format tflite)"
RUN_PURPOSE = "the TFLite backend (a .tflite --model)"
MAX_BATCH = 4096  # the largest batch the exported graph is traced for; TfliteBackend runs batch_size at a time


def require_export_extra() -> None:
    import logging

    # torchao (a litert-torch dependency) warns at import that this CPU machine has no Triton.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    require_extra("tflite", EXPORT_PURPOSE)


@contextlib.contextmanager
def _quiet_converter() -> Iterator[None]:
    """litert-torch prints a line per conversion step; an export prints one line of its own."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices of torch/torchao internals, not the user's business
            yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _signature_module(model: Any) -> Any:
    """The model with a keyword input `faces` and a dict output `logits`, so the file's signature
    names its tensors as the ONNX file does."""
    import torch

    class Named(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, faces: torch.Tensor) -> dict[str, torch.Tensor]:  # (B, 1, I, I) -> {"logits": (B, C)}
            return {OUTPUT_NAME: self.net(faces)}

    return Named(model).eval()


def export_tflite_bytes(model: Any) -> bytes:
    """A PyTorch emolens model as a serialised fp32 .tflite model with a dynamic batch."""
    import torch

    from emolens.export.model import export_copy

    litert_torch = import_extra("litert_torch", "tflite", EXPORT_PURPOSE)
    model = export_copy(model, static_flatten=True)
    config = model.emolens_config
    side = config.preprocess.input_size
    # A sample batch of 2: torch.export specialises a dimension of size 1 to a constant.
    sample = {INPUT_NAME: torch.zeros(2, 1, side, side)}
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with _quiet_converter():
        edge = litert_torch.signature(SIGNATURE, _signature_module(model), sample_kwargs=sample, dynamic_shapes={INPUT_NAME: {0: batch}}).convert()
        data = bytes(edge.model_content())
    return _with_metadata(data, metadata_entries(config, NOT_QUANTIZED))


def quantize_tflite(fp32: bytes, calibration: np.ndarray | None = None) -> tuple[bytes, str]:
    """int8 version of a serialised fp32 emolens .tflite model; returns (bytes, method).

    Static (int8 weights per channel and int8 activations, ai-edge-quantizer's static_wi8_ai8)
    when `calibration` faces (uint8 (N, S, S)) are given, else dynamic (int8 weights only).
    """
    from emolens.export.calibration import check_calibration_faces
    from emolens.preprocessing import normalize_array

    quantizer = import_extra("ai_edge_quantizer.quantizer", "tflite", "int8 quantisation (emolens export --format tflite --int8)")
    recipe = import_extra("ai_edge_quantizer.recipe", "tflite", "int8 quantisation (emolens export --format tflite --int8)")
    meta = read_metadata(fp32, "<exported model>")
    config = config_from_metadata(meta, "<exported model>", FORMAT)
    with _quiet_converter():
        if calibration is None:
            q = quantizer.Quantizer(bytearray(fp32), recipe.dynamic_wi8_afp32())
            result = q.quantize(enable_progress_report=False)
            method = "dynamic int8 (weights only, no calibration)"
        else:
            faces = check_calibration_faces(calibration)
            q = quantizer.Quantizer(bytearray(fp32), recipe.static_wi8_ai8())
            batches = [{INPUT_NAME: normalize_array(faces[i : i + 64], config.preprocess)} for i in range(0, len(faces), 64)]
            result = q.quantize(q.calibrate({SIGNATURE: batches}, num_threads=1), enable_progress_report=False)
            method = f"static int8, calibrated on {len(faces)} faces"
    return _with_metadata(bytes(result.quantized_model), metadata_entries(config.to_dict(), method)), method


def _with_metadata(data: bytes, entries: dict[str, str]) -> bytes:
    """`data` with each entry as a named metadata buffer (replacing any of the same name)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    named = lambda m: m.name.decode() if isinstance(m.name, bytes) else m.name  # noqa: E731 - the object API gives bytes
    model.metadata = [m for m in model.metadata or [] if named(m) not in entries]
    for name, text in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(text.encode(), np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(data: bytes, label: str) -> dict[str, str]:
    """The named metadata entries of a .tflite flatbuffer, as text; ModelError if it is not one."""
    from ai_edge_litert import schema_py_generated as schema

    if len(data) < 8 or data[4:8] != b"TFL3":  # the flatbuffer's file identifier
        raise ModelError(f"{label}: not a TFLite model (no TFL3 file identifier); export one with `emolens export --format tflite`")
    try:
        model = schema.Model.GetRootAs(data, 0)
        meta = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            buffer = model.Buffers(entry.Buffer())
            raw = data[buffer.Offset() : buffer.Offset() + buffer.Size()] if buffer.Offset() > 1 else buffer.DataAsNumpy()
            if isinstance(raw, np.ndarray):
                raw = raw.tobytes()
            meta[entry.Name().decode()] = bytes(raw).decode("utf-8", errors="replace")
    except Exception as exc:  # a damaged flatbuffer fails in struct unpacking or indexing
        raise ModelError(f"{label}: damaged TFLite file ({type(exc).__name__}: {exc})") from None
    return meta


def _check_io(inp: dict[str, Any], out: dict[str, Any], config: Any, label: str) -> None:
    """One input (B, 1, I, I) with a dynamic batch, float32 or int8, and logits (B, C), as the config says."""
    side, n = config.preprocess.input_size, len(config.labels)
    shape = [int(d) for d in inp["shape_signature"]]
    if len(shape) != 4 or shape[0] != -1 or shape[1:] != [1, side, side] or inp["dtype"] not in (np.float32, np.int8):
        raise ModelError(
            f"{label}: input is {np.dtype(inp['dtype']).name} {shape}; its config (preprocess.input_size {side}) needs "
            f"float32 or int8 [-1, 1, {side}, {side}] with a dynamic batch (export with `emolens export --format tflite`)"
        )
    if len(out["shape"]) != 2 or int(out["shape"][1]) != n or out["dtype"] not in (np.float32, np.int8):
        raise ModelError(f"{label}: output is {np.dtype(out['dtype']).name} {list(out['shape'])}; its config's {n} labels need [batch, {n}]")


class TfliteBackend(ExportedBackend):
    """Runs an emolens .tflite model (file path or bytes) with the LiteRT interpreter on the CPU."""

    name = "tflite"

    def __init__(self, model: str | Path | bytes, *, source: str | None = None, threads: int | None = None, batch_size: int = 256):
        from emolens.runtime.devices import session_threads

        interpreter = import_extra("ai_edge_litert.interpreter", "tflite", RUN_PURPOSE)
        label, data = model_bytes(model, FORMAT, source)
        meta = read_metadata(data, label)
        self.config = config_from_metadata(meta, label, FORMAT)
        try:
            # The intra-op share of the process's thread plan, as an onnxruntime session gets it.
            self.interpreter = interpreter.Interpreter(model_content=data, num_threads=session_threads(threads)[0])
        except Exception as exc:  # LiteRT raises RuntimeError/ValueError of its own for bad files
            raise ModelError(f"{label}: the LiteRT interpreter could not load this model ({exc})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{label}: graph has {len(inputs)} inputs and {len(outputs)} outputs; expected one of each (export with `emolens export`)")
        self._input, self._output = inputs[0], outputs[0]
        _check_io(self._input, self._output, self.config, label)
        self.quantization = meta.get(QUANT_KEY, NOT_QUANTIZED)
        self.source = label
        self.batch_size = min(batch_size, MAX_BATCH)
        self._batch = -1  # the batch the interpreter's tensors are allocated for
        self._lock = threading.Lock()  # one interpreter: calls from several threads take turns

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Logits (B, C) float32 for normalised faces x (B, 1, I, I) float32."""
        it, inp, out = self.interpreter, self._input, self._output
        if inp["dtype"] == np.int8:  # a fully integer file: quantise with the scale it records
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
        with self._lock:
            if len(x) != self._batch:
                it.resize_tensor_input(inp["index"], list(x.shape))
                it.allocate_tensors()
                self._batch = len(x)
            it.set_tensor(inp["index"], x)
            it.invoke()
            y = it.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        return y
