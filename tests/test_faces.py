"""Face detectors, the tracker and the crop geometry, on real faces shipped with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.errors import ConfigError, DataError, ModelError
from emolens.faces import HaarDetector, create_detector, iou, list_detectors

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

from emolens.pipeline.samples import astronaut, group_photo  # noqa: E402

ASTRONAUT_FACE = (177, 66, 95, 95)  # where the face is in skimage's astronaut.png


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


def test_haar_finds_the_astronaut_face_and_nothing_else(haar):
    dets = haar.detect(astronaut()[:, :, ::-1].copy())
    assert len(dets) == 1
    assert iou(dets[0].box, ASTRONAUT_FACE) > 0.7
    assert 0.5 <= dets[0].confidence <= 1.0


def test_haar_accepts_gray_and_finds_every_face_of_a_group(haar):
    img, truth = group_photo()
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    dets = haar.detect(gray)
    assert len(dets) == len(truth) == 4
    for box in truth:  # every true face has a detection on it
        assert max(iou(box, d.box) for d in dets) > 0.6
    areas = [d.box[2] * d.box[3] for d in dets]
    assert areas == sorted(areas, reverse=True)  # largest first


def test_haar_min_face_size_drops_small_faces():
    img, truth = group_photo()  # faces of 140, 174, 112 and 128 px
    dets = HaarDetector(min_face_size=150).detect(img)
    assert any(iou(d.box, truth[1]) > 0.6 for d in dets)
    for small in (truth[2], truth[3]):
        assert all(iou(d.box, small) < 0.1 for d in dets)
    assert all(max(d.box[2:]) >= 135 for d in dets)


def test_haar_finds_no_face_in_a_blank_or_tiny_image(haar):
    assert haar.detect(np.full((240, 320, 3), 127, np.uint8)) == []
    assert haar.detect(np.zeros((10, 10), np.uint8)) == []


def test_detect_near_follows_a_moved_face(haar):
    img = astronaut()[:, :, ::-1].copy()
    moved = np.roll(img, (9, -12), axis=(0, 1))  # the face moves 12 px left and 9 px down
    det = haar.detect_near(moved, ASTRONAUT_FACE)
    assert det is not None
    assert iou(det.box, (ASTRONAUT_FACE[0] - 12, ASTRONAUT_FACE[1] + 9, 95, 95)) > 0.6
    assert haar.detect_near(np.full_like(img, 90), ASTRONAUT_FACE) is None


def test_detectors_reject_bad_input_clearly(haar):
    with pytest.raises(DataError, match="uint8"):
        haar.detect(np.zeros((50, 50), np.float32))
    with pytest.raises(DataError, match="BGR"):
        haar.detect(np.zeros((50, 50, 4), np.uint8))
    with pytest.raises(ConfigError, match="min_face_size"):
        HaarDetector(min_face_size=2)
    with pytest.raises(ConfigError, match="scale_factor"):
        HaarDetector(scale_factor=3.0)


def test_create_detector_by_name_and_errors(tmp_path):
    assert {"haar", "yunet", "mediapipe", "centerface", "mtcnn"} <= set(list_detectors())
    det = create_detector("haar", min_face_size=60, min_neighbors=4, threshold=None)
    assert isinstance(det, HaarDetector) and det.min_face_size == 60 and det.min_neighbors == 4
    assert create_detector(det) is det
    with pytest.raises(ConfigError, match="Did you mean 'haar'"):
        create_detector("harr")
    with pytest.raises(ModelError, match="no Haar cascade"):
        create_detector("haar:haarcascade_nope.xml")
    with pytest.raises(ConfigError, match="opencv_zoo"):
        create_detector("yunet")
    with pytest.raises(ModelError, match="no such YuNet model file"):
        create_detector(f"yunet:{tmp_path / 'missing.onnx'}")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not load"):
        create_detector(f"yunet:{bad}")


def test_mediapipe_missing_is_a_clear_error():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'emolens\[mediapipe\]'"):
            create_detector("mediapipe")
    else:  # pragma: no cover - only where mediapipe is installed
        pytest.skip("mediapipe is installed")


def test_yunet_with_a_real_model_file_when_one_is_given():
    import os

    path = os.environ.get("EMOLENS_YUNET_MODEL")
    if not path:
        pytest.skip("set EMOLENS_YUNET_MODEL to OpenCV's face_detection_yunet_2023mar.onnx to test YuNet")
    dets = create_detector(f"yunet:{path}").detect(astronaut()[:, :, ::-1].copy())
    assert dets and iou(dets[0].box, ASTRONAUT_FACE) > 0.4
