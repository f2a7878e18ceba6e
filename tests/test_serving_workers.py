"""Each inference worker searches faces with its own detector: requests run side by side.

The recognizer is real (a random simple_cnn, the Haar detector) and so is the photo (scikit-image's
astronaut). To see whether two requests overlap without timing CPU work on a shared machine,
the detector used is a real Haar detector whose every search first holds its own instance's
lock for a fixed time, as a native detector call holds the instance it runs on: one shared
detector makes two requests take twice that, one per worker about once.
"""

from __future__ import annotations

import io
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
skimage_data = pytest.importorskip("skimage.data")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from emolens.faces import HaarDetector  # noqa: E402
from emolens.serving import create_app  # noqa: E402
from emolens.serving.workers import detector_factory, detector_settings  # noqa: E402
from imaging import encode  # noqa: E402

LOCAL = "http://localhost"
HOLD_S = 1.0  # how long each search holds its detector


class SlowHaar(HaarDetector):
    """Haar, with each search holding this instance for HOLD_S first (sleeping: no CPU used)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.busy = threading.Lock()

    def detect(self, image, gray=None):
        with self.busy:
            time.sleep(HOLD_S)
            return super().detect(image, gray)


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    import torch

    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline import EmotionRecognizer

    torch.manual_seed(0)
    path = save_model(build_model(ModelConfig(arch="simple_cnn", name="workers-cnn", version="0")), tmp_path_factory.mktemp("m") / "w.safetensors")
    return EmotionRecognizer(model=path, backend="torch", min_face_size=60)


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(skimage_data.astronaut()[:320, 80:400])  # one face, a small image: the real search is quick


def two_at_once(app, body: bytes) -> tuple[float, list, list]:
    """Post `body` twice at the same moment: (seconds until both answered, the responses, the
    workers' detectors while the pool was up)."""
    with TestClient(app, base_url=LOCAL) as c:
        assert c.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"}).status_code == 200  # warm
        responses: list = [None, None]
        start = threading.Barrier(3)

        def send(i: int) -> None:
            start.wait()
            responses[i] = c.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"})

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join(60)
        seconds = time.perf_counter() - t0
        return seconds, responses, list(app.state.runner.workers.detectors)


def test_two_slow_requests_take_about_the_time_of_one(recognizer, photo):
    app = create_app(recognizer, workers=2, detector=lambda: SlowHaar(min_face_size=60))
    seconds, responses, detectors = two_at_once(app, photo)
    assert [r.status_code for r in responses] == [200, 200]
    assert all(len(r.json()["faces"]) == 1 for r in responses)
    # Side by side: HOLD_S plus one real search. One at a time would be at least 2 x HOLD_S.
    assert seconds < 1.75 * HOLD_S, f"two requests took {seconds:.2f} s: they ran one after the other"
    assert len(detectors) == 2 and detectors[0] is not detectors[1]
    assert all(isinstance(d, SlowHaar) and d is not recognizer.detector for d in detectors)


def test_one_shared_detector_would_serialise_them(recognizer, photo):
    # The same measurement with the old design (every worker on the recognizer's one detector)
    # shows what the test above rules out.
    import copy

    shared = copy.copy(recognizer)
    shared.detector = SlowHaar(min_face_size=60)
    app = create_app(shared, workers=2, detector=lambda: shared.detector)
    seconds, responses, detectors = two_at_once(app, photo)
    assert [r.status_code for r in responses] == [200, 200]
    assert seconds >= 2 * HOLD_S and detectors == [shared.detector]


def test_workers_get_twins_of_the_recognizers_detector(recognizer, photo):
    app = create_app(recognizer, workers=2)
    with TestClient(app, base_url=LOCAL) as c:
        decoded = np.asarray(Image.open(io.BytesIO(photo)))  # what the server sees
        direct = recognizer.predict(decoded, color_order="rgb").summary()
        served = c.post("/v1/predict", content=photo, headers={"content-type": "image/jpeg"}).json()["faces"]
        twins = list(app.state.runner.workers.detectors)
    assert [f["box"] for f in served] == [f["box"] for f in direct] != []
    assert twins and all(t is not recognizer.detector for t in twins)
    assert all(detector_settings(t) == detector_settings(recognizer.detector) for t in twins)
    assert detector_settings(recognizer.detector)[1]["min_face_size"] == 60


def test_a_recognizer_without_a_detector_is_shared_and_locked():
    class Opaque:  # what an application might inject: predict, but no .detector
        def predict(self, image, **kw): ...

    assert detector_factory(Opaque()) is None
    from emolens.serving.jobs import Runner

    runner = Runner(Opaque())
    assert runner.workers.get() is runner.recognizer
    assert runner.detect_lock.acquire(blocking=False)  # a real lock: whole-image prediction is serialised
    runner.detect_lock.release()


def test_a_named_detector_is_checked_when_the_app_is_built(recognizer):
    from emolens.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown face detector"):
        create_app(recognizer, detector="haarr")
