"""From images, videos and cameras to labelled faces: the recognizer, results and outputs."""

from emolens.pipeline.images import PredictReport, predict_images
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.pipeline.stream import FaceStream, StreamOptions
from emolens.pipeline.video import VideoResult, process_video
from emolens.pipeline.video_io import VideoWriter, open_source
from emolens.pipeline.webcam import LiveFrame, live_frames, run_webcam

__all__ = [
    "EmotionRecognizer", "FaceResult", "FaceStream", "ImageResult", "LiveFrame", "PredictReport", "StreamOptions", "VideoResult",
    "VideoWriter",
    "live_frames", "open_source", "predict_images", "process_video", "run_webcam",
]
