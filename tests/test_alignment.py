"""Tilted faces: detectors report the eyes, and crops are turned upright by them (`Detection.roll`).

On scikit-image's astronaut photo, turned about the face by +-30 degrees: each detector that
finds landmarks tells the turn from the eyes, and the recognizer's crop of the turned photo
is the crop of the upright one again, which a crop of the box as it lies is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emolens.errors import ConfigError
from emolens.faces import Detection
from emolens.faces.base import wrap_degrees
from emolens.preprocessing import Framing, crop_face

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")

from emolens.faces.registry import DETECTORS  # noqa: E402
from emolens.pipeline.samples import astronaut  # noqa: E402

FACE_CENTRE = (224.0, 113.0)  # of the astronaut's face, about which the photo is turned
EYED = ["centerface", "mtcnn"]  # built-in detectors that find landmarks (YuNet and MediaPipe need files or their own venv)


def turned(photo: np.ndarray, clockwise: float) -> np.ndarray:
    turn = cv2.getRotationMatrix2D(FACE_CENTRE, -clockwise, 1.0)  # OpenCV turns anticlockwise for positive angles
    return cv2.warpAffine(photo, turn, photo.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def the_face(detector, photo: np.ndarray) -> Detection:
    (face,) = [d for d in detector.detect(photo) if d.box[2] > 60]
    return face


def eyed_detector(name: str, **options):
    from emolens.faces import create_detector

    if not DETECTORS[name].installed():
        pytest.skip(f"the {name} detector is not installed here ({DETECTORS[name].install})")
    return create_detector(name, min_face_size=40, **options)


def test_roll_is_the_eye_lines_angle_and_moves_with_the_detection():
    upright = Detection((0, 0, 40, 40), 0.9, ((10.0, 20.0), (30.0, 20.0)))
    assert upright.roll == 0.0 and Detection((0, 0, 40, 40), 0.9).roll == 0.0  # no eyes: not turned
    assert Detection((0, 0, 40, 40), 0.9, ((10.0, 10.0), (20.0, 20.0))).roll == pytest.approx(45.0)  # second eye lower: clockwise
    assert Detection((0, 0, 40, 40), 0.9, ((20.0, 10.0), (10.0, 20.0))).roll == pytest.approx(135.0)  # order kept, not sorted by x
    moved = upright.shifted(100, 50)
    assert moved.box == (100, 50, 40, 40) and moved.eyes == ((110.0, 70.0), (130.0, 70.0)) and moved.roll == 0.0
    assert upright.shifted(100, 50, box=(101, 51, 38, 38)).box == (101, 51, 38, 38)
    # With the mouth: the mean of the eye line and the eyes-to-mouth axis, or 0 when they disagree.
    eyes = ((10.0, 20.0), (30.0, 20.0))
    assert Detection((0, 0, 40, 40), 0.9, eyes, (20.0, 40.0)).roll == pytest.approx(0.0)
    assert Detection((0, 0, 40, 40), 0.9, eyes, (20.0 - 20.0 * np.tan(np.radians(10)), 40.0)).roll == pytest.approx(5.0)  # axis 10, eyes 0
    profile = Detection((0, 0, 40, 40), 0.9, ((20.0, 10.0), (21.0, 25.0)), (24.0, 38.0))  # eyes stacked, mouth below: a guess
    assert abs(profile.shifted(0, 0).eyes[0][0] - 20.0) < 1e-9 and profile.roll == 0.0
    turned = Detection((0, 0, 40, 40), 0.9, ((20.0, 10.0), (20.0, 30.0)), (0.0, 20.0))  # a quarter clockwise, both agree
    assert turned.roll == pytest.approx(90.0) and turned.shifted(5, 5).mouth == (5.0, 25.0)


def test_a_turned_crop_is_the_upright_crop_turned():
    image = np.random.default_rng(0).integers(0, 256, (200, 300), np.uint8)
    box = (100, 50, 60, 60)
    upright = crop_face(image, box, 0.0, 60)
    # A vanishing roll takes the turned path and gives the upright path's pixels exactly.
    np.testing.assert_array_equal(crop_face(image, box, 0.2, 48, roll=1e-9), crop_face(image, box, 0.2, 48))
    # A face turned a quarter clockwise (roll 90) is read along its own axes: the crop is the image's crop turned back.
    np.testing.assert_array_equal(crop_face(image, box, 0.0, 60, roll=90.0), np.rot90(upright, 1))
    np.testing.assert_array_equal(crop_face(image, box, 0.0, 60, roll=-90.0), np.rot90(upright, -1))
    # The framing's offsets turn with the face: "down" in the face is "left" in the image at roll 90.
    shifted = crop_face(image, box, Framing(1.0, 0.0, 0.25), 60, roll=90.0)
    np.testing.assert_array_equal(shifted, np.rot90(crop_face(image, (85, 50, 60, 60), 0.0, 60), 1))
    colour = np.dstack([image] * 3)
    np.testing.assert_array_equal(crop_face(colour, box, 0.2, 48, roll=20.0), crop_face(image, box, 0.2, 48, roll=20.0))


def test_small_tilts_are_left_and_larger_ones_turned_back_but_for_them():
    from emolens.pipeline.recognizer import LEVEL_TILT, upright_turn

    assert LEVEL_TILT > 0 and upright_turn(0.0) == 0.0 and upright_turn(LEVEL_TILT / 2) == 0.0 and upright_turn(-LEVEL_TILT) == 0.0
    assert upright_turn(LEVEL_TILT + 12.0) == pytest.approx(12.0) and upright_turn(-LEVEL_TILT - 30.0) == pytest.approx(-30.0)


@pytest.mark.parametrize("name", EYED)
def test_detectors_tell_a_faces_tilt_from_its_eyes(name):
    det = eyed_detector(name)
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    face = the_face(det, photo)
    (x1, y1), (x2, y2) = face.eyes
    x, y, w, h = face.box
    assert x <= x1 < x2 <= x + w and y <= min(y1, y2) and max(y1, y2) <= y + h / 2 + 5, face  # the first eye on the image's left
    assert x1 < face.mouth[0] < x2 and max(y1, y2) + 0.2 * h < face.mouth[1] < y + h, face  # the mouth between and below them
    natural = face.roll
    assert abs(natural) < 10, face
    for clockwise in (30.0, -30.0):
        assert the_face(det, turned(photo, clockwise)).roll == pytest.approx(natural + clockwise, abs=8.0), clockwise


def test_detect_near_and_two_passes_keep_the_eyes_in_the_photos_pixels():
    det = eyed_detector("centerface")
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    face = the_face(det, photo)
    near = det.detect_near(photo, face.box)  # searched in a shrunk window, moved back into the photo
    assert np.abs(np.subtract(near.eyes, face.eyes)).max() < 4, (near, face)
    canvas = np.zeros((1200, 1600, 3), np.uint8)  # a photo big enough for the two-pass search's windows
    canvas[600 : 600 + photo.shape[0], 900 : 900 + photo.shape[1]] = photo
    moved = det.detect(canvas)[0]  # found in the shrunk first pass: within 8% of the face's side
    assert np.abs(np.subtract(moved.eyes, face.eyes) - (900, 600)).max() < 0.08 * face.box[2], (moved, face)


def test_the_recognizer_turns_a_tilted_face_upright():
    from emolens.pipeline import EmotionRecognizer

    rec = EmotionRecognizer(detector="centerface" if DETECTORS["centerface"].installed() else "mtcnn")
    if not DETECTORS[rec.detector.name].installed():
        pytest.skip("no detector that finds eyes is installed")
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    upright = rec.crop(photo, [the_face(rec.detector, photo)])[0].astype(float)
    tilted_photo = turned(photo, 35.0)
    face = the_face(rec.detector, tilted_photo)

    def likeness(crop: np.ndarray) -> float:
        return float(np.corrcoef(crop.astype(float).ravel(), upright.ravel())[0, 1])

    aligned = likeness(rec.crop(tilted_photo, [face])[0])
    rec.align = False
    try:
        as_boxed = likeness(rec.crop(tilted_photo, [face])[0])
        assert rec.crop(tilted_photo, [face.box]).shape == (1, 48, 48)  # bare boxes are cut as they lie
    finally:
        rec.align = True
    # Not equal: the tilted face's box and eyes differ a little from the upright one's (measured 0.61 against 0.07).
    assert aligned > 0.45 and aligned > as_boxed + 0.3, (aligned, as_boxed)
    assert "align=False" in repr(EmotionRecognizer(detector="haar", align=False)) and rec.model_info()["align"] is True


WIDER = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "widerface-val5"


@pytest.mark.skipif(not (WIDER / "widerface-val5.zip").is_file(), reason=f"WIDER FACE subset not found at {WIDER}")
def test_profiles_are_not_turned_by_guessed_eyes():
    """Three real WIDER FACE photos of couples kissing: each man is seen in profile, and CenterFace
    guesses his eye line 50-80 degrees off his upright face; the eyes-to-mouth line disagrees, so
    his crop is not turned. His partner's landmarks agree, and hers is turned by about her eye line."""
    import zipfile

    from emolens.faces import create_detector

    eyed_detector("centerface")  # skips where it is not installed
    det = create_detector("centerface")  # at its defaults, as photos are searched
    guessed, agreed = 0, 0
    with zipfile.ZipFile(WIDER / "widerface-val5.zip") as zf:
        for name in ("19_Couple_Couple_19_835.jpg", "19_Couple_Couple_19_254.jpg", "19_Couple_Couple_19_667.jpg"):
            photo = cv2.imdecode(np.frombuffer(zf.read(f"WIDER_val/images/19--Couple/{name}"), np.uint8), cv2.IMREAD_COLOR)
            for face in det.detect(photo):
                (x1, y1), (x2, y2) = face.eyes
                eye_line = float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))
                if abs(eye_line) > 45:
                    assert face.roll == 0.0, (name, face)
                    guessed += 1
                else:
                    assert abs(face.roll - eye_line) < 10, (name, face)
                    agreed += 1
    assert guessed == 3 and agreed == 3


def test_a_video_track_turns_its_crops_by_a_smoothed_tilt():
    """A face's tilt is read afresh in every frame; its crops turn by the track's moving average
    (weight `smooth` on the past, like its scores), not by each frame's reading; smooth=0: each
    frame's own."""
    from emolens.pipeline import EmotionRecognizer, FaceStream, StreamOptions

    rec = EmotionRecognizer(detector=eyed_detector("centerface"))
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    frames = [turned(photo, 30.0 if i % 2 else 10.0) for i in range(12)]  # a head rocking by 20 degrees a frame
    for smooth in (0.8, 0.0):
        seen: list[tuple[float, float]] = []
        real = rec.classify_detections

        def spy(image, detections, ids=None, rolls=None, real=real, seen=seen):
            seen.append((detections[0].roll, detections[0].roll if rolls is None else rolls[0]))
            return real(image, detections, ids, rolls)

        rec.classify_detections = spy
        try:
            stream = FaceStream(rec, StreamOptions(smooth=smooth))
            for i, frame in enumerate(frames):
                assert len(stream.process(frame, i)) == 1
        finally:
            del rec.classify_detections
        read, used = np.array(seen).T
        assert np.ptp(read[4:]) > 12.0  # the landmarks see the rocking
        if smooth:
            assert np.ptp(used[4:]) < 0.4 * np.ptp(read[4:]) and abs(used[4:].mean() - read[4:].mean()) < 3, (read, used)
        else:
            np.testing.assert_array_equal(used, read)


def test_a_turned_search_finds_a_tilted_face_upright_and_brings_it_back():
    """`turned_search` turns the photo so that a tilted face stands upright, where the detector is
    surer of it, and brings its box (centred on the face) and landmarks (so its tilt) back;
    `centerface,turns=30` merges such searches in both directions with the photo's own."""
    from emolens.faces import create_detector
    from emolens.faces.base import turned_search

    det = eyed_detector("centerface", relook_tilt=0)  # the plain search, without its second look
    photo = turned(np.ascontiguousarray(astronaut()[:, :, ::-1]), 50.0)
    plain = the_face(det, photo)
    (back,) = [d for d in turned_search(det.detect, photo, -50.0) if d.box[2] > 60]
    x, y, w, h = back.box
    assert abs(x + w / 2 - FACE_CENTRE[0]) < 12 and abs(y + h / 2 - FACE_CENTRE[1]) < 12, back
    assert back.roll == pytest.approx(50.0, abs=8.0) and back.confidence > plain.confidence, (back, plain)
    both = create_detector("centerface,turns=30", min_face_size=40)
    assert "turns=30" in repr(both)
    assert the_face(both, photo).confidence >= plain.confidence
    with pytest.raises(ConfigError, match="turns"):
        create_detector("centerface,turns=120")


@pytest.mark.parametrize("clockwise", [60.0, 90.0, -80.0, 150.0])
def test_a_strongly_tilted_face_is_looked_at_again_upright(clockwise):
    """A face found tilted by 45 degrees or more is searched again in its window turned upright by
    the tilt read (`relook_tilt`): its tilt is then read within 8 degrees of the turn, with a
    face-shaped box. The one search reads the astronaut turned by 90 degrees as 65 (and by 150 as
    127) in int8, closer in fp32."""
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    natural = the_face(eyed_detector("centerface"), photo).roll
    face = the_face(eyed_detector("centerface"), turned(photo, clockwise))
    assert abs(wrap_degrees(face.roll - natural - clockwise)) < 8.0 and face.box[3] > face.box[2], face
    once = the_face(eyed_detector("centerface", relook_tilt=0), turned(photo, clockwise))
    assert once.confidence <= face.confidence
    if abs(clockwise) >= 90:  # the one search reads these 25-27 degrees off in int8, 7-13 in fp32
        assert abs(wrap_degrees(once.roll - natural - clockwise)) > abs(wrap_degrees(face.roll - natural - clockwise)) + 2.0, once


# (detector, turn) where the one search reads the astronaut's tilt far off: measured 14.4, 28.4 and
# 16.2 degrees off for MTCNN, 18.9 and 21.8 for MediaPipe. (MTCNN at 75 degrees is left out: its
# second look there reads this photo within 4 degrees or 30 off depending on the window's scale,
# and its median error at 75 degrees on FER+ test is 22: docs/faces.md, "Tilted faces".)
UNDER_READ = [("mtcnn", 45.0), ("mtcnn", 60.0), ("mtcnn", -60.0), ("mediapipe", 60.0), ("mediapipe", 75.0)]


@pytest.mark.parametrize(("name", "clockwise"), UNDER_READ)
def test_detectors_that_under_read_a_strong_tilt_read_it_after_a_second_look(name, clockwise):
    """The second look upright is the base detector's (`FaceDetector.detect`), for every detector
    that finds landmarks. MTCNN and MediaPipe read a strong tilt as much less than it is, so they
    look again from 20 degrees: the astronaut turned by 45-75 degrees is then read within 8 degrees
    of the turn, where their one search is more than 12 off."""
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    natural = the_face(eyed_detector(name), photo).roll
    face = the_face(eyed_detector(name), turned(photo, clockwise))
    assert abs(wrap_degrees(face.roll - natural - clockwise)) < 8.0, face
    once = the_face(eyed_detector(name, relook_tilt=0), turned(photo, clockwise))
    assert abs(wrap_degrees(once.roll - natural - clockwise)) > 12.0, once
    with pytest.raises(ConfigError, match="relook_tilt"):
        eyed_detector(name, relook_tilt=200)


def test_results_carry_the_tilt_and_the_landmarks():
    """Each face's result says how far it is tilted and where its eyes and mouth are (JSON, and a
    `tilt` column in tables); from a detector without landmarks, None."""
    import json

    from emolens.pipeline import EmotionRecognizer

    rec = EmotionRecognizer(detector="centerface" if DETECTORS["centerface"].installed() else "mtcnn")
    if not DETECTORS[rec.detector.name].installed():
        pytest.skip("no detector that finds eyes is installed")
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    natural = the_face(rec.detector, photo).roll
    face = rec.predict(turned(photo, 60.0))[0]
    assert face.tilt == pytest.approx(natural + 60.0, abs=8.0), face
    (rx, ry), (lx, ly), (mx, my) = face.landmarks["right_eye"], face.landmarks["left_eye"], face.landmarks["mouth"]
    x, y, w, h = face.box
    assert x <= min(rx, lx, mx) and max(rx, lx, mx) <= x + w and y <= min(ry, ly) and my <= y + h, face
    assert ly > ry + 0.3 * (lx - rx) and mx < (rx + lx) / 2, face  # turned clockwise: the left eye lower, the mouth to the left
    summary = json.loads(json.dumps(face.summary()))
    assert summary["tilt"] == round(face.tilt, 1) and summary["landmarks"]["mouth"] == [round(mx, 1), round(my, 1)]
    assert face.flat()["tilt"] == summary["tilt"]
    plain = EmotionRecognizer(detector="haar").predict(photo)[0]
    assert plain.tilt is None and plain.landmarks is None and plain.summary()["landmarks"] is None
    # A face given as a crop: found again in it, its tilt and landmarks in the crop's pixels.
    crop = turned(photo, 60.0)[13:213, 124:324]
    (cropped,) = rec.predict_crops([crop])
    assert cropped.box == (0, 0, 200, 200) and cropped.tilt == pytest.approx(natural + 60.0, abs=10.0), cropped
    assert all(0 <= v <= 200 for point in cropped.landmarks.values() for v in point), cropped
    (as_it_came,) = rec.predict_crops([crop], reframe=False)
    assert as_it_came.tilt is None and as_it_came.landmarks is None and as_it_came.detection_confidence is None


def test_a_face_lying_down_is_followed_in_a_window_turned_upright(monkeypatch):
    """A head turning from upright to lying on its side over 91 frames (the astronaut photo turned 0
    to 90 degrees, a degree a frame): followed in a window turned upright by its tilt past 30
    degrees (`FaceStream._near`), it is found in every frame with one id, and its tilt read to within
    10 degrees at the end. Followed as the window lies, taking only finds of the detector's own
    threshold, it is lost in some frames past 75 degrees (weak finds, `follow_threshold`, keep it
    there too, but with the tilt read worse)."""
    import emolens.pipeline.stream as stream_mod
    from emolens.pipeline import EmotionRecognizer, FaceStream

    rec = EmotionRecognizer(detector=eyed_detector("centerface"))
    photo = np.ascontiguousarray(astronaut()[:, :, ::-1])
    frames = [turned(photo, float(angle)) for angle in range(91)]
    stream = FaceStream(rec)
    results = list(stream.run((i, i / 30, frame) for i, frame in enumerate(frames)))
    assert [len(r) for r in results] == [1] * 91 and len({r[0].face_id for r in results}) == 1
    assert abs(stream._seen_rolls[results[-1][0].face_id] - 90.0) < 10.0
    monkeypatch.setattr(stream_mod, "_TURNED_FOLLOW", 1000.0)  # never turned
    as_it_lies = FaceStream(rec)
    assert [len(r) for r in as_it_lies.run((i, i / 30, frame) for i, frame in enumerate(frames))] == [1] * 91
    assert abs(next(iter(as_it_lies._seen_rolls.values())) - 90.0) > 10.0  # 73 degrees here
    strict = EmotionRecognizer(detector=eyed_detector("centerface", follow_threshold=0.5))
    assert sum(len(r) == 0 for r in FaceStream(strict).run((i, i / 30, frame) for i, frame in enumerate(frames))) >= 2
