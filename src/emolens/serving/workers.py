"""One face detector per inference worker, so requests never wait for each other's face search.

OpenCV's detectors keep per-call state (two threads in one Haar `CascadeClassifier` fail with
`scaleIdx` assertions), so each `FaceDetector` serialises its own native calls. Sharing one
detector between the server's workers therefore ran every face search one at a time: with 2
workers the load test measured the throughput of one. Here every worker thread gets its own
detector, built once, on the thread's first request, by `emolens.faces.create_detector` with
the shared recognizer's detector settings, and its own light view of the recognizer that uses
it; the model (PyTorch or onnxruntime, both safe to call from several threads) stays one copy.
`workers` (ServerLimits) bounds the detectors as it bounds the threads: a Haar cascade is
about 1 MB.
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("emolens.serving")

DetectorFactory = Callable[[], Any]  # () -> emolens.faces.FaceDetector


def detector_settings(detector: Any) -> tuple[str, dict[str, Any]]:
    """(spec, options) that `create_detector(spec, **options)` turns into a twin of `detector`.

    The options are the detector's constructor arguments it keeps under the same names
    (min_face_size, threshold, and e.g. Haar's scale_factor and min_neighbors); the model file,
    where it has one, goes into the spec as `name:FILE`, as on the command line.
    """
    params = inspect.signature(type(detector).__init__).parameters
    options = {name: getattr(detector, name) for name in params if name != "self" and hasattr(detector, name)}
    model_file = getattr(detector, "cascade_file", None) or getattr(detector, "model_path", None)
    for key in ("cascade", "model_path"):  # carried by the spec instead
        options.pop(key, None)
    return (f"{detector.name}:{model_file}" if model_file else detector.name), options


def detector_factory(recognizer: Any, spec: str | DetectorFactory | None = None, **options: Any) -> DetectorFactory | None:
    """How each worker makes its own detector, or None when the recognizer must be shared as it is.

    spec: a callable returning a new FaceDetector, a detector name for `create_detector` (with
    `options`), or None: a twin of `recognizer.detector`. None is also the answer for a
    recognizer without a `.detector` (one injected by a test or an application): it is then
    called from every worker as it is, which `Runner` serialises unless it is `thread_safe`.
    """
    if callable(spec):
        return spec
    from emolens.faces import FaceDetector, create_detector

    if spec is not None:
        create_detector(spec, **options)  # fail now, with the detector's own message, not on the first request
        return lambda: create_detector(spec, **options)
    detector = getattr(recognizer, "detector", None)
    if not isinstance(detector, FaceDetector):
        return None
    name, settings = detector_settings(detector)
    try:
        create_detector(name, **settings)
    except Exception as exc:  # a detector create_detector cannot rebuild from its settings
        log.warning("one %s detector shared by all workers (face searches run one at a time): %s", detector.name, exc)
        return None
    return lambda: create_detector(name, **settings)


class WorkerRecognizers:
    """`get()` is the calling thread's recognizer: the shared one with that thread's own detector.

    With no factory, every thread gets the shared recognizer itself.
    """

    def __init__(self, recognizer: Any, factory: DetectorFactory | None):
        self.recognizer = recognizer
        self.factory = factory
        self._local = threading.local()
        # The detectors of the worker threads alive now (a thread's goes when the thread does).
        self.detectors: weakref.WeakSet[Any] = weakref.WeakSet()

    def get(self) -> Any:
        if self.factory is None:
            return self.recognizer
        mine = getattr(self._local, "recognizer", None)
        if mine is None:
            detector = self.factory()
            # A shallow copy shares the backend (the model) and the config; only the detector is this thread's.
            mine = copy.copy(self.recognizer)
            mine.detector = detector
            self._local.recognizer = mine
            self.detectors.add(detector)
        return mine
