"""From images, videos and cameras to labelled faces: the recognizer, results and outputs.

Names are imported on first use, so that reading `emolens.pipeline.defaults` (the CLI does,
for its --help) loads neither OpenCV nor a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from emolens.pipeline.defaults import PIPELINE, PipelineDefaults  # noqa: F401
    from emolens.pipeline.images import PredictReport, predict_images  # noqa: F401
    from emolens.pipeline.recognizer import EmotionRecognizer  # noqa: F401
    from emolens.pipeline.results import FaceResult, ImageResult  # noqa: F401
    from emolens.pipeline.stream import FaceStream, StreamOptions  # noqa: F401
    from emolens.pipeline.video import VideoResult, process_video  # noqa: F401
    from emolens.pipeline.video_io import VideoWriter, open_source  # noqa: F401
    from emolens.pipeline.webcam import LiveFrame, live_frames, run_webcam  # noqa: F401

_LAZY = {
    "PIPELINE": "defaults", "PipelineDefaults": "defaults",
    "PredictReport": "images", "predict_images": "images",
    "EmotionRecognizer": "recognizer",
    "FaceResult": "results", "ImageResult": "results",
    "FaceStream": "stream", "StreamOptions": "stream",
    "VideoResult": "video", "process_video": "video",
    "VideoWriter": "video_io", "open_source": "video_io",
    "LiveFrame": "webcam", "live_frames": "webcam", "run_webcam": "webcam",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"emolens.pipeline.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'emolens.pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
