"""The HTTP API through FastAPI's test client: every endpoint, every bad input, the limits.

The recognizer is real (a randomly initialised simple_cnn saved to a temp folder, the Haar
detector) and the faces are real photos from scikit-image; labels are whatever the random
weights say, so tests compare the API with the recognizer called directly.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
skimage_data = pytest.importorskip("skimage.data")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about its httpx dependency, irrelevant here
    from fastapi.testclient import TestClient

# The server answers only to its own names (DNS rebinding); TestClient says "testserver" unless told.
LOCAL = "http://localhost"

from PIL import Image  # noqa: E402

from emolens.labels import EMOTIONS  # noqa: E402
from emolens.pipeline.draw import plan_layout  # noqa: E402
from emolens.serving import ServerLimits, create_app  # noqa: E402
from emolens.serving.pool import InferencePool, Overloaded  # noqa: E402
from imaging import encode, png_header  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="simple_cnn", name="test-cnn", version="0.0.1", metrics={"val_accuracy": 0.5}))
    return save_model(model, tmp_path_factory.mktemp("model") / "test-cnn.safetensors")


@pytest.fixture(scope="module")
def recognizer(model_path):
    from emolens.pipeline import EmotionRecognizer

    return EmotionRecognizer(model=model_path)


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, workers=2), base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # (512, 512, 3) RGB, one frontal face


@pytest.fixture(scope="module")
def face_jpeg(astronaut) -> bytes:
    return encode(astronaut)


def post_raw(client, data: bytes, content_type: str | None = "image/jpeg", path: str = "/v1/predict"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=data, headers=headers)


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


# ---------------------------------------------------------------- service endpoints


def test_healthz_reports_pool_and_limits(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["model"] == {"name": "test-cnn", "version": "0.0.1"}
    assert body["limits"] == ServerLimits(workers=2).to_dict()
    assert body["pool"]["workers"] == 2 and body["pool"]["running"] == 0


def test_model_endpoint_describes_the_model(client, recognizer, model_path):
    from emolens.preprocessing import PreprocessConfig

    body = client.get("/v1/model").json()
    assert body["labels"] == list(EMOTIONS)
    assert body["input_size"] == PreprocessConfig().input_size
    assert body["metrics"] == {"val_accuracy": 0.5}
    assert (body["name"], body["version"]) == ("test-cnn", "0.0.1")
    assert body["source"] == model_path.name  # no server paths leak


def test_openapi_documents_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/predict/crops", "/v1/model", "/healthz"):
        assert path in schema["paths"], path
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/jpeg", "application/octet-stream"} <= set(body)
    responses = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "413", "415", "422", "503"} <= set(responses)
    # Swagger UI would load its scripts from a CDN; it is off.
    assert client.get("/docs").status_code == 404


# ---------------------------------------------------------------- /v1/predict


def test_predict_raw_jpeg_matches_the_recognizer(client, recognizer, astronaut, face_jpeg):
    response = post_raw(client, face_jpeg)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = recognizer.predict(np.asarray(Image.open(io.BytesIO(face_jpeg))), color_order="rgb", name="upload").summary()
    assert len(body["faces"]) == len(expected) == 1
    face, want = body["faces"][0], expected[0]
    assert face["box"] == want["box"]
    assert face["label"] == want["label"] and face["label"] in EMOTIONS
    assert list(face["scores"]) == list(EMOTIONS)
    assert face["scores"] == pytest.approx(want["scores"], abs=1e-5)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    box = face["box"]  # the astronaut's face is in the upper middle of the photo
    assert 100 < box["x"] + box["w"] / 2 < 350 and 50 < box["y"] + box["h"] / 2 < 250
    assert body["image"] == {"width": 512, "height": 512}
    assert body["model"] == {"name": "test-cnn", "version": "0.0.1"}
    # Where the page draws the label: as annotated images place it (plan_layout), above the face.
    layout = plan_layout(recognizer.predict(np.asarray(Image.open(io.BytesIO(face_jpeg))), color_order="rgb").faces, (512, 512, 3), bars="none")
    tag = layout.tags[0]
    assert body["tags"] == [{"face": 0, "box": dict(zip("xywh", tag.rect, strict=True)), "text": f"{face['label']} {face['score']:.0%}"}]
    assert tag.rect[1] + tag.rect[3] == box["y"]
    t = body["timings"]
    assert t["total_ms"] >= t["predict_ms"] > 0 and t["decode_ms"] > 0 and t["queue_ms"] >= 0


@pytest.mark.parametrize("content_type", ["application/octet-stream", None, "image/png"])
def test_predict_accepts_octet_stream_missing_type_and_mislabelled(client, face_jpeg, content_type):
    # Pillow reads the bytes, so a JPEG sent as image/png, or with no type, still works.
    response = post_raw(client, face_jpeg, content_type)
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def test_predict_multipart_equals_raw(client, face_jpeg):
    raw = post_raw(client, face_jpeg).json()
    multi = client.post("/v1/predict", files={"file": ("astronaut.jpg", face_jpeg, "image/jpeg")})
    assert multi.status_code == 200, multi.text
    assert multi.json()["faces"][0]["scores"] == raw["faces"][0]["scores"]
    assert multi.json()["faces"][0]["image"] == "astronaut.jpg"


@pytest.mark.parametrize("kind", ["gray_png", "rgba_png", "no_face"])
def test_predict_other_images(client, astronaut, kind):
    if kind == "gray_png":
        data, n = encode(np.asarray(Image.fromarray(astronaut).convert("L")), "PNG"), 1
    elif kind == "rgba_png":
        data, n = encode(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]), "PNG"), 1
    else:
        data, n = encode(np.full((120, 160, 3), 128, np.uint8), "PNG"), 0
    response = post_raw(client, data, "image/png")
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == n


# ---------------------------------------------------------------- bad inputs


def test_empty_body_is_422(client):
    assert_error(post_raw(client, b""), 422, "empty")


def test_not_an_image_is_422(client):
    body = assert_error(post_raw(client, b"this is plain text, not a JPEG" * 10), 422, "not a readable image")
    assert body["error"] == "DataError"


def test_truncated_jpeg_is_422(client, face_jpeg):
    assert_error(post_raw(client, face_jpeg[: len(face_jpeg) // 2]), 422, "not a readable image")


def test_huge_dimensions_are_refused_before_decoding(client):
    # 10000 x 6000 = 60 MP declared in a few bytes: over the 50 MP default, refused from the header.
    body = assert_error(post_raw(client, png_header(10_000, 6_000), "image/png"), 413, "10000x6000", "60,000,000")
    assert body["error"] == "ImageTooLarge"
    # Beyond what Pillow itself agrees to open (decompression bomb).
    assert_error(post_raw(client, png_header(60_000, 60_000), "image/png"), 413, "too large")


def test_image_over_a_configured_pixel_limit(recognizer, astronaut):
    with TestClient(create_app(recognizer, max_pixels=256 * 256), base_url=LOCAL) as small:
        assert_error(post_raw(small, encode(astronaut)), 413, "512x512", "65,536")
        assert post_raw(small, encode(astronaut[::2, ::2].copy())).status_code == 200  # 256 x 256 passes


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded", "image/svg+xml"])
def test_wrong_content_type_is_415(client, face_jpeg, content_type):
    body = assert_error(post_raw(client, face_jpeg, content_type), 415, content_type)
    assert "Content-Type: image/jpeg" in body["detail"]  # the fix is in the message


def test_multipart_part_with_wrong_type_is_415(client):
    assert_error(client.post("/v1/predict", files={"file": ("notes.txt", b"hello", "text/plain")}), 415, "notes.txt")


def test_multipart_without_file_part_is_422(client, face_jpeg):
    response = client.post("/v1/predict", files={"photo": ("a.jpg", face_jpeg, "image/jpeg")})
    assert_error(response, 422, "'file'", "'photo'")


def test_malformed_multipart_is_400(client):
    response = client.post("/v1/predict", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert_error(response, 400, "boundary")


def test_oversize_upload_is_413_declared_and_streamed(recognizer, astronaut):
    limit = 50_000
    big = encode(astronaut, "PNG")  # ~500 kB
    assert len(big) > limit
    with TestClient(create_app(recognizer, max_upload_bytes=limit), base_url=LOCAL) as small:
        body = assert_error(post_raw(small, big, "image/png"), 413, f"{len(big):,}", f"{limit:,}")
        assert body["error"] == "Request Entity Too Large"

        def chunks():  # no Content-Length: the limit is enforced while the body streams in
            for i in range(0, len(big), 16_384):
                yield big[i : i + 16_384]

        assert_error(small.post("/v1/predict", content=chunks(), headers={"content-type": "image/png"}), 413, f"{limit:,}")
        assert_error(small.post("/v1/predict", files={"file": ("big.png", big, "image/png")}), 413)
        assert post_raw(small, encode(astronaut[::4, ::4].copy())).status_code == 200  # small uploads still pass


def test_get_on_predict_is_405_json(client):
    response = client.get("/v1/predict")
    assert response.status_code == 405 and "detail" in response.json()


# ---------------------------------------------------------------- /v1/predict/crops


@pytest.fixture(scope="module")
def lfw_crops() -> list[bytes]:
    faces = skimage_data.lfw_subset()[:3]  # (25, 25) float in [0, 1]: already-cropped faces
    return [encode((f * 255).round().astype(np.uint8), "PNG") for f in faces]


def test_crops_answers_each_and_reports_bad_ones(client, recognizer, lfw_crops):
    files = [("files", (f"lfw{i}.png", data, "image/png")) for i, data in enumerate(lfw_crops)]
    files.insert(1, ("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg")))
    response = client.post("/v1/predict/crops", files=files)
    assert response.status_code == 200, response.text
    crops = response.json()["crops"]
    assert [c["index"] for c in crops] == [0, 1, 2, 3]
    assert [c["filename"] for c in crops] == ["lfw0.png", "broken.jpg", "lfw1.png", "lfw2.png"]
    assert crops[1]["label"] is None and "broken.jpg" in crops[1]["error"]
    direct = recognizer.predict_crops([np.asarray(Image.open(io.BytesIO(d))) for d in lfw_crops])
    for crop, want in zip([crops[0], crops[2], crops[3]], direct, strict=True):
        assert crop["error"] is None
        assert crop["label"] == want.label
        assert crop["scores"] == pytest.approx(want.scores, abs=1e-5)
        assert crop["box"] == {"x": 0, "y": 0, "w": 25, "h": 25}


def test_crops_limits_and_types(recognizer, lfw_crops):
    with TestClient(create_app(recognizer, max_batch=2), base_url=LOCAL) as c:
        files = [("files", (f"f{i}.png", lfw_crops[i], "image/png")) for i in range(3)]
        assert_error(c.post("/v1/predict/crops", files=files), 422, "at most 2")
        assert_error(post_raw(c, lfw_crops[0], "image/png", "/v1/predict/crops"), 415, "multipart/form-data")
        assert_error(c.post("/v1/predict/crops", files={"file": ("a.png", lfw_crops[0], "image/png")}), 422, "'files'")
        assert_error(c.post("/v1/predict/crops", files={"files": ("a.txt", b"hi", "text/plain")}), 415, "a.txt")


# ---------------------------------------------------------------- /v1/stream


def test_stream_answers_every_frame_and_survives_bad_ones(client, face_jpeg):
    with client.websocket_connect("ws://localhost/v1/stream") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["labels"] == list(EMOTIONS)
        assert hello["model"]["name"] == "test-cnn"
        ws.send_bytes(face_jpeg)
        first = ws.receive_json()
        assert first["type"] == "result" and first["seq"] == 1
        assert len(first["faces"]) == 1 and first["faces"][0]["label"] in EMOTIONS
        ws.send_bytes(b"not an image")
        bad = ws.receive_json()
        assert (bad["type"], bad["seq"], bad["status"], bad["error"]) == ("error", 2, 422, "DataError")
        ws.send_text("hello?")
        text = ws.receive_json()
        assert (text["type"], text["status"]) == ("error", 415)
        ws.send_bytes(face_jpeg)
        again = ws.receive_json()
        assert again["type"] == "result" and again["seq"] == 4
        # Followed as `emolens webcam` follows a camera: one track id, its scores smoothed over the
        # track (the box found again near the last one, so the scores differ a little), its bars shown.
        face = again["faces"][0]
        assert face["face_id"] == first["faces"][0]["face_id"] is not None
        assert face["scores"] == pytest.approx(first["faces"][0]["scores"], abs=0.01)
        assert first["main"] == again["main"] == {"face_id": face["face_id"], "held": False, "followed": False}
        assert again["tags"][0]["face"] == 0 and again["tags"][0]["text"].startswith(f"#{face['face_id']} ")  # ids, as the live window shows


def test_stream_keeps_a_face_through_a_missed_frame(client, astronaut, face_jpeg):
    """A frame without the face (a hand over it, a blink of the detector) keeps its id and its
    bars: `main` holds it, and the face back in view is the same track."""
    blank = encode(np.full_like(astronaut, 128))  # the same size: the same camera
    with client.websocket_connect("ws://localhost/v1/stream") as ws:
        ws.receive_json()
        replies = []
        for frame in (face_jpeg, face_jpeg, blank, face_jpeg):
            ws.send_bytes(frame)
            replies.append(ws.receive_json())
    face_id = replies[0]["faces"][0]["face_id"]
    assert replies[2]["faces"] == [] and replies[2]["main"] == {"face_id": face_id, "held": True, "followed": False}
    assert replies[3]["faces"][0]["face_id"] == face_id and replies[3]["main"] == {"face_id": face_id, "held": False, "followed": False}


def test_each_stream_follows_its_own_faces(client, face_jpeg, astronaut):
    """Two connections at once, frames interleaved: each has its own tracks (ids from 1) and its
    own choice of face; one seeing nobody does not disturb the other."""
    blank = encode(np.full_like(astronaut, 128))
    with client.websocket_connect("ws://localhost/v1/stream") as a, client.websocket_connect("ws://localhost/v1/stream") as b:
        a.receive_json(), b.receive_json()
        answers: dict[str, list] = {"a": [], "b": []}
        for _ in range(3):
            a.send_bytes(face_jpeg)
            b.send_bytes(blank)
            answers["a"].append(a.receive_json())
            answers["b"].append(b.receive_json())
        b.send_bytes(face_jpeg)
        b_face = b.receive_json()["faces"][0]
    assert {r["faces"][0]["face_id"] for r in answers["a"]} == {b_face["face_id"]} == {1}
    assert all(r["faces"] == [] and r["main"] == {"face_id": None, "held": False, "followed": False} for r in answers["b"])


def test_a_viewer_chooses_whose_bars_a_stream_shows(client, astronaut):
    """Two faces, the left one larger: the bars go to it by the rule; `{"type": "follow",
    "face_id": ...}` moves them to the other for good, null gives them back to the rule, and
    a malformed command is a 415 error that leaves the stream as it was."""
    small = cv2.resize(astronaut[20:260, 120:340], (150, 164))
    two = np.full((480, 640, 3), 90, np.uint8)
    two[40:40 + 240, 20:20 + 220] = astronaut[20:260, 120:340]
    two[60:60 + 164, 400:400 + 150] = small
    frame = encode(two)
    with client.websocket_connect("ws://localhost/v1/stream") as ws:
        ws.receive_json()

        def send_frame() -> dict:
            ws.send_bytes(frame)
            return ws.receive_json()

        first = send_frame()
        assert len(first["faces"]) == 2, first["faces"]
        left, right = sorted(first["faces"], key=lambda f: f["box"]["x"])
        assert first["main"] == {"face_id": left["face_id"], "held": False, "followed": False}  # the larger
        ws.send_text(json.dumps({"type": "follow", "face_id": right["face_id"]}))
        assert ws.receive_json() == {"type": "follow", "seq": 2, "face_id": right["face_id"]}
        chosen = [send_frame()["main"] for _ in range(3)]
        assert chosen == [{"face_id": right["face_id"], "held": False, "followed": True}] * 3
        for bad in ('{"type": "follow", "face_id": "x"}', '{"type": "zoom"}', "x" * 300, "[1]"):
            ws.send_text(bad)
            assert ws.receive_json()["status"] == 415
        assert send_frame()["main"]["face_id"] == right["face_id"]
        ws.send_text('{"type": "follow", "face_id": null}')
        ws.receive_json()
        assert send_frame()["main"] == {"face_id": left["face_id"], "held": False, "followed": False}


def test_a_stream_whose_frames_change_size_starts_afresh(client, astronaut, face_jpeg):
    """Another camera (or resolution) mid-stream: its frames are followed from scratch, not matched
    to boxes of the old size, and the bars are the new frame's face's at once."""
    wide = encode(np.pad(astronaut, ((0, 0), (64, 64), (0, 0)), constant_values=90))
    with client.websocket_connect("ws://localhost/v1/stream") as ws:
        ws.receive_json()
        replies = []
        for frame in (face_jpeg, wide):
            ws.send_bytes(frame)
            replies.append(ws.receive_json())
    first, second = (r["faces"][0] for r in replies)
    assert replies[1]["image"] == {"width": 640, "height": 512}
    assert second["box"]["x"] == pytest.approx(first["box"]["x"] + 64, abs=4)
    assert replies[1]["main"] == {"face_id": second["face_id"], "held": False, "followed": False}


def test_stream_refuses_oversize_frames(recognizer, face_jpeg):
    with TestClient(create_app(recognizer, max_upload_bytes=1000), base_url=LOCAL) as c, c.websocket_connect("ws://localhost/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(face_jpeg)
        reply = ws.receive_json()
        assert reply["status"] == 413 and f"{len(face_jpeg):,}" in reply["detail"]


# ---------------------------------------------------------------- overload


class GatedRecognizer:
    """The real recognizer, held at a gate so the test decides when each prediction finishes."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.thread_safe = True  # the test holds several predictions open at once on purpose
        self.calls = 0

    def model_info(self):
        return self.inner.model_info()

    def predict(self, image, **kw):
        self.calls += 1
        self.entered.release()
        assert self.gate.wait(30), "test never opened the gate"
        return self.inner.predict(image, **kw)

    def predict_crops(self, images, **kw):
        return self.inner.predict_crops(images, **kw)


def test_overload_answers_503_with_retry_after_then_recovers(recognizer, face_jpeg):
    gated = GatedRecognizer(recognizer)
    app = create_app(gated, workers=1, max_queue=1)
    with TestClient(app, base_url=LOCAL) as c:
        results: list = [None, None]

        def send(i: int) -> None:
            results[i] = post_raw(c, face_jpeg)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        threads[0].start()
        assert gated.entered.acquire(timeout=30)  # request 0 holds the only worker
        threads[1].start()
        deadline = time.monotonic() + 30
        while c.get("/healthz").json()["pool"]["queued"] < 1:  # request 1 waits in the queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = post_raw(c, face_jpeg)
        body = assert_error(refused, 503, "busy")
        assert body["error"] == "Overloaded"
        assert int(refused.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # health stays answerable under load
        gated.gate.set()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        stats = c.get("/healthz").json()["pool"]
        assert stats["rejected"] == 1 and stats["queued"] == 0 and stats["running"] == 0
        assert post_raw(c, face_jpeg).status_code == 200
    assert gated.calls == 3  # the refused request never reached the model


def test_pool_bounds_admission_and_counts_cancelled_jobs_until_they_end():
    async def main() -> None:
        pool = InferencePool(workers=1, max_queue=1)
        gate = threading.Event()
        first = asyncio.ensure_future(pool.run(gate.wait, 10))
        second = asyncio.ensure_future(pool.run(lambda: 42))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as info:
            await pool.run(lambda: 0)
        assert info.value.capacity == 2 and info.value.retry_after >= 1
        second.cancel()  # a queued job that is given up frees its slot...
        await asyncio.sleep(0.05)
        first.cancel()  # ...a running one only when its thread really ends
        await asyncio.sleep(0.05)
        assert pool.stats() | {"completed": 0} == {"workers": 1, "max_queue": 1, "running": 1, "queued": 0, "completed": 0, "rejected": 1}
        third = asyncio.ensure_future(pool.run(lambda: 7))  # takes the one free place, in the queue
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):  # the abandoned but still running job keeps its worker
            await pool.run(lambda: 0)
        gate.set()
        result, waited = await third
        assert result == 7 and waited > 0.0
        assert pool.stats()["rejected"] == 2 and pool.stats()["running"] == 0
        pool.close()

    asyncio.run(main())


def test_limits_are_validated():
    from emolens.errors import ConfigError

    for bad in ({"workers": 0}, {"max_upload_bytes": -1}, {"max_queue": -1}, {"max_batch": 1.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ServerLimits(**bad)


# ---------------------------------------------------------------- the page


def test_page_is_served_with_local_assets_only(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    import re

    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        response = client.get(asset)
        assert response.status_code == 200
        assert not re.search(r"https?://", response.text), f"{asset} refers to another site"
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    js = client.get("/static/app.js").text
    for emotion in EMOTIONS:  # labels come from /v1/model, never typed into the page
        assert f'"{emotion}"' not in js
