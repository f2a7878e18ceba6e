"""The server against abusive clients (issue 14): huge images, floods, slow senders, foreign pages.

Socket-level behaviour (slow clients, a client leaving mid-upload, a WebSocket that is never
read) runs against real uvicorn on 127.0.0.1 with an ephemeral port and the settings `serve`
uses (`uvicorn_options`), with timeouts of a second or two so the tests take seconds. The rest
goes through FastAPI's test client. Memory figures are in docs/serving.md ("Limits"), measured
by benchmarks/fuzz_server.py.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import struct
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("uvicorn")
skimage_data = pytest.importorskip("skimage.data")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from PIL import Image  # noqa: E402

from emolens.serving import ServerLimits, create_app  # noqa: E402
from emolens.serving.limits import PixelBudget, PixelsBusy  # noqa: E402
from emolens.serving.uploads import Upload, plan_decode  # noqa: E402
from imaging import encode, png_header  # noqa: E402
from live_server import live as _live  # noqa: E402

LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    import torch

    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline import EmotionRecognizer

    torch.manual_seed(0)
    path = save_model(build_model(ModelConfig(arch="simple_cnn", name="test-cnn", version="0.0.1")), tmp_path_factory.mktemp("m") / "m.safetensors")
    return EmotionRecognizer(model=path)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


class Recording:
    """The real recognizer, remembering the shape of every image it was asked to detect in."""

    def __init__(self, inner, gate: threading.Event | None = None):
        self.inner, self.gate, self.shapes = inner, gate, []
        self.thread_safe = gate is not None
        self.entered = threading.Semaphore(0)

    def model_info(self):
        return self.inner.model_info()

    def predict(self, image, **kw):
        self.shapes.append(image.shape)
        self.entered.release()
        if self.gate is not None:
            assert self.gate.wait(30)
        return self.inner.predict(image, **kw)

    def predict_crops(self, images, **kw):
        return self.inner.predict_crops(images, **kw)


class _Summary:
    def __init__(self, rows):
        self.rows = rows

    def summary(self):
        return self.rows


class Fake:
    """A recognizer that answers at once: `nan=True` gives the scores of a model with a broken temperature."""

    thread_safe = True

    def __init__(self, nan: bool = False):
        self.value = float("nan") if nan else 0.5

    def model_info(self):
        return {"name": "fake", "version": "0", "labels": ["happy", "sad"]}

    def face(self, box):
        return {"box": box, "label": "happy", "scores": {"happy": self.value, "sad": self.value}, "score": self.value}

    def predict(self, image, **kw):
        return _Summary([self.face({"x": 1, "y": 1, "w": 4, "h": 4})] if self.value != 0.5 else [])

    def predict_crops(self, images, **kw):
        return [_Summary(self.face({"x": 0, "y": 0, "w": im.shape[1], "h": im.shape[0]})) for im in images]


# ---------------------------------------------------------------- decoded pixels


def test_huge_crops_are_refused_from_their_headers_naming_the_crop(recognizer):
    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        files = [("files", ("small.png", png_header(40, 40), "image/png"))] + [
            ("files", (f"huge{i}.png", png_header(7000, 7000), "image/png")) for i in range(8)
        ]
        r = c.post("/v1/predict/crops", files=files)
        assert r.status_code == 413, r.text
        assert "huge0.png" in r.json()["detail"] and "7000x7000" in r.json()["detail"]
        assert c.app.state.runner.pixels.peak == 0  # nothing was decoded


def test_crops_adding_up_over_the_request_bound_are_refused(recognizer):
    crop = encode(np.full((60, 60), 128, np.uint8), "PNG")  # 3,600 pixels
    with TestClient(create_app(recognizer, max_pixels=10_000, max_crop_pixels=5_000), base_url=LOCAL) as c:
        r = c.post("/v1/predict/crops", files=[("files", (f"c{i}.png", crop, "image/png")) for i in range(3)])
        assert r.status_code == 413 and "10,800" in r.json()["detail"], r.text
        r = c.post("/v1/predict/crops", files=[("files", (f"c{i}.png", crop, "image/png")) for i in range(2)])
        assert r.status_code == 200 and len(r.json()["crops"]) == 2


def test_pixel_budget_waits_then_refuses():
    budget = PixelBudget(100, wait_s=0.2)
    with budget.reserve(60, "first"):
        with pytest.raises(PixelsBusy, match="60 of 100"):
            budget.reserve(60, "second")
        threading.Timer(0.05, lambda: None).start()
    with budget.reserve(100, "all"):
        assert budget.used == 100
    assert budget.used == 0 and budget.peak == 100
    from emolens.serving.uploads import ImageTooLarge

    with pytest.raises(ImageTooLarge, match="at most 100"):
        budget.reserve(101, "too big")


def test_concurrent_requests_share_one_pixel_budget(recognizer, astronaut):
    # Two workers, room for one 512x512 photo: the second decode waits for the first to finish.
    gate = threading.Event()
    rec = Recording(recognizer, gate)
    pixels = 512 * 512
    app = create_app(rec, workers=2, max_pixels=pixels, pixel_budget=pixels + pixels // 2)
    body = encode(astronaut)
    with TestClient(app, base_url=LOCAL) as c:
        results = []
        threads = [threading.Thread(target=lambda: results.append(c.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"}))) for _ in range(2)]
        for t in threads:
            t.start()
        assert rec.entered.acquire(timeout=30)
        time.sleep(0.5)
        assert len(rec.shapes) == 1  # the other request is held at the budget, not decoding
        assert app.state.runner.pixels.used == pixels
        gate.set()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert app.state.runner.pixels.peak == pixels and app.state.runner.pixels.used == 0


def test_big_photo_is_detected_downscaled_and_boxes_come_back_in_its_pixels(recognizer, astronaut):
    canvas = np.full((2000, 3000, 3), 90, np.uint8)
    canvas[0:2048, 500:2548] = np.asarray(Image.fromarray(astronaut).resize((2048, 2048)))[:2000]
    rec = Recording(recognizer)
    with TestClient(create_app(rec, max_side=1000), base_url=LOCAL) as c:
        for fmt in ("JPEG", "PNG"):
            r = c.post("/v1/predict", content=encode(canvas, fmt), headers={"content-type": f"image/{fmt.lower()}"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["image"] == {"width": 3000, "height": 2000}
            assert max(rec.shapes[-1][:2]) <= 1000  # the detector saw at most max_side
            face = max(body["faces"], key=lambda f: f["box"]["w"])
            box = face["box"]
            cx, cy = box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
            # The astronaut's face (about x 174-272, y 64-162 in the 512 photo) scaled 4x, shifted by 500.
            assert 500 + 4 * 150 < cx < 500 + 4 * 300 and 4 * 40 < cy < 4 * 190, box
            assert box["w"] > 250
            if face["landmarks"] is not None:  # the detector finds landmarks: they come back in the photo's pixels too
                for x, y in face["landmarks"].values():
                    assert box["x"] <= x <= box["x"] + box["w"] and box["y"] <= y <= box["y"] + box["h"], face


def test_jpeg_is_decoded_reduced_and_exif_rotation_kept(recognizer):
    big = encode(np.full((3000, 4000, 3), 100, np.uint8))
    plan = plan_decode(Upload(big, "big.jpg"), 50_000_000, 1000)
    assert plan.pixels <= 1000 * 750 * 1.01 and plan.size == (4000, 3000)  # 1/4 scale, straight from the decoder
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: shown as 3000 wide, 4000 high
    buf = io.BytesIO()
    Image.fromarray(np.full((3000, 4000, 3), 100, np.uint8)).save(buf, "JPEG", exif=exif.tobytes())
    with TestClient(create_app(recognizer, max_side=1000), base_url=LOCAL) as c:
        r = c.post("/v1/predict", content=buf.getvalue(), headers={"content-type": "image/jpeg"})
        assert r.status_code == 200 and r.json()["image"] == {"width": 3000, "height": 4000}, r.text


# ---------------------------------------------------------------- NaN


def test_nan_scores_are_an_error_never_invalid_json():
    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))

    with TestClient(create_app(Fake(nan=True)), base_url=LOCAL) as c:
        png = encode(np.full((20, 20), 9, np.uint8), "PNG")
        r = c.post("/v1/predict", content=png, headers={"content-type": "image/png"})
        assert r.status_code == 500 and "non-finite" in strict(r.text)["detail"]
        r = c.post("/v1/predict/crops", files=[("files", ("a.png", png, "image/png"))])
        assert r.status_code == 500 and "non-finite" in strict(r.text)["detail"]
        with c.websocket_connect("ws://localhost/v1/stream") as ws:
            strict(ws.receive_text())
            ws.send_bytes(png)
            reply = strict(ws.receive_text())
            assert (reply["type"], reply["status"], reply["error"]) == ("error", 500, "ModelError")
            ws.send_bytes(png)  # the connection stays usable
            assert strict(ws.receive_text())["seq"] == 2


# ---------------------------------------------------------------- hosts, origins, headers


def test_foreign_hosts_and_origins_are_refused(recognizer):
    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 400
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
            assert c.get("/healthz", headers={"host": host}).status_code == 200, host
        img = {"content-type": "image/png"}
        r = c.post("/v1/predict", content=b"x", headers={**img, "origin": "http://evil.example"})
        assert r.status_code == 403 and "--allow-origin" in r.json()["detail"]
        assert c.post("/v1/predict", files={"file": ("a.png", b"x", "image/png")}, headers={"origin": "null"}).status_code == 403
        assert c.post("/v1/predict", content=b"x", headers={**img, "origin": "http://localhost"}).status_code == 422  # same origin: reaches the API
        assert c.post("/v1/predict", content=b"x", headers={**img, "origin": "http://localhost:9999"}).status_code == 403  # other port
        from starlette.websockets import WebSocketDisconnect

        with pytest.raises(WebSocketDisconnect) as denied, c.websocket_connect("ws://localhost/v1/stream", headers={"origin": "http://evil.example"}):
            pass
        assert denied.value.code == 1008  # closed before accepting: uvicorn refuses the handshake with 403
        with c.websocket_connect("ws://localhost/v1/stream", headers={"origin": "http://localhost"}) as ws:
            assert ws.receive_json()["type"] == "hello"


def test_hosts_and_origins_can_be_widened(recognizer):
    app = create_app(recognizer, allowed_hosts=["*.lab.example"], allowed_origins=["https://app.example.org"])
    with TestClient(app, base_url="http://gpu1.lab.example") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 400  # the list replaces the default
        ok = c.post("/v1/predict", content=b"x", headers={"content-type": "image/png", "origin": "https://app.example.org"})
        assert ok.status_code == 422


def test_every_response_carries_the_security_headers(recognizer):
    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        for r in (c.get("/healthz"), c.get("/nope"), c.get("/static/app.js"), c.post("/v1/predict", content=b""),
                  c.get("/healthz", headers={"host": "evil.example"}), c.get("/")):
            assert r.headers["x-content-type-options"] == "nosniff", r.url
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in c.get("/").headers["content-security-policy"]  # the page keeps its own policy


def test_cli_passes_the_new_limits_and_allow_lists(monkeypatch, recognizer):
    import uvicorn

    import emolens.pipeline
    from emolens.cli import main
    from emolens.runtime import devices

    runs = []
    monkeypatch.setattr(emolens.pipeline, "EmotionRecognizer", lambda **kw: recognizer)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append((app, kw)))
    monkeypatch.setattr(devices, "configure_threads", lambda threads=None, *, workers=1: None)  # torch's threads are process-wide
    assert main(["serve", "--read-timeout", "2.5", "--max-connections", "7", "--max-streams", "3", "--max-side", "900",
                 "--max-crop-pixels", "1000", "--pixel-budget", "60000000", "--allow-host", "box.lan",
                 "--allow-origin", "https://x.example"]) == 0
    (app, kw), = runs
    limits = app.state.limits
    assert (limits.read_timeout, limits.max_connections, limits.max_streams, limits.max_side, limits.max_crop_pixels, limits.pixel_budget) == (
        2.5, 7, 3, 900, 1000, 60_000_000)
    assert kw["limit_concurrency"] == 7 and kw["ws_max_queue"] == 1 and kw["ws_per_message_deflate"] is False
    assert kw["http"].__name__ == "GuardedH11Protocol"
    with TestClient(app, base_url="http://box.lan") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 200
        assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 400
        assert c.post("/v1/predict", content=b"", headers={"origin": "https://x.example"}).status_code == 422


def test_stream_count_is_bounded(recognizer):
    from starlette.websockets import WebSocketDisconnect

    with TestClient(create_app(recognizer, max_streams=1), base_url=LOCAL) as c:
        with c.websocket_connect("ws://localhost/v1/stream") as first:
            first.receive_json()
            with c.websocket_connect("ws://localhost/v1/stream") as second, pytest.raises(WebSocketDisconnect) as closed:
                second.receive_json()
            assert closed.value.code == 1013
        with c.websocket_connect("ws://localhost/v1/stream") as again:  # the slot is free again
            assert again.receive_json()["type"] == "hello"


# ---------------------------------------------------------------- real uvicorn on loopback


def live(app, **config):
    return _live(app, log_level="info", log_config=None, **config)  # INFO: the disconnect test reads the log


def held_for(sock: socket.socket, trickle: bytes, limit: float) -> tuple[float, bytes]:
    """Send `trickle` a byte every 0.2 s until the server answers or closes; (seconds, answer)."""
    sock.setblocking(False)
    t0, answer = time.monotonic(), b""
    for i in range(len(trickle)):
        if time.monotonic() - t0 > limit:
            break
        try:
            sock.send(trickle[i : i + 1])
        except OSError:
            break
        time.sleep(0.2)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            break
        answer += data
        if not data or answer:
            break
    return time.monotonic() - t0, answer


def test_slow_clients_are_dropped_after_the_read_timeout(recognizer, astronaut):
    import httpx

    app = create_app(recognizer, read_timeout=1.5)
    with live(app) as port:
        head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n".encode()
        results: dict[int, tuple[float, bytes]] = {}

        def client(i: int) -> None:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i >= 3:  # headers at once, then the body a byte at a time
                s.sendall(head)
                results[i] = held_for(s, b"\xff" * 5000, 15)
            else:  # the headers themselves a byte at a time
                results[i] = held_for(s, head, 15)
            s.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()  # the server keeps answering others meanwhile
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 2
        for t in threads:
            t.join(20)
        for i, (seconds, answer) in results.items():
            assert seconds < 1.5 + 1.5, (i, seconds)  # dropped soon after the 1.5 s deadline
            if i >= 3:
                assert answer.startswith(b"HTTP/1.1 408") and b"read-timeout" in answer and b"connection: close" in answer.lower(), answer
        assert len(results) == 5


def test_connections_over_the_limit_get_503(recognizer):
    import httpx

    app = create_app(recognizer, max_connections=3, read_timeout=5)
    with live(app) as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)
        try:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 503
        finally:
            for s in idle:
                s.close()
        time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_client_leaving_mid_upload_logs_one_line(recognizer, caplog):
    app = create_app(recognizer)
    with caplog.at_level(logging.INFO), live(app) as port:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n".encode() + b"\xff" * 1000)
        time.sleep(0.3)
        s.close()
        deadline = time.monotonic() + 10
        while not any("disconnected" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
        time.sleep(0.3)
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and "1,000 bytes" in lines[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage() or r.levelno >= logging.ERROR]


def ws_open(port: int, origin: str | None = None) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that does not read fills this at once
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    origin_line = f"Origin: {origin}\r\n" if origin else ""
    s.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{origin_line}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def ws_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return b"\x82" + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_websocket_client_that_never_reads_is_dropped(caplog):
    # A fake recognizer answers at once, so replies pile up faster than a test can wait for.
    app = create_app(Fake(), read_timeout=1.0)
    frame = ws_frame(encode(np.full((8, 8), 7, np.uint8), "PNG"))
    # Without uvicorn's keepalive: this client answers no pings either, and on a loaded machine the
    # backlog outlasts the ping interval and timeout (20 + 20 s), so the keepalive closed the
    # connection before the read timeout this test is about (seen once in `make test`; with both
    # at 0.5 s it fails every time).
    with caplog.at_level(logging.INFO), live(app, ws_ping_interval=None) as port:
        s = ws_open(port, origin=f"http://127.0.0.1:{port}")  # the page's own origin
        s.settimeout(0.5)
        sent, t0 = 0, time.monotonic()
        while sent < 50_000 and time.monotonic() - t0 < 20:
            try:
                s.sendall(frame)  # never read a reply
                sent += 1
            except (TimeoutError, OSError):
                break  # the server stopped reading: it has one frame at a time, no queue
        # The server works through the frames it had already read before it finds the client
        # gone; under a loaded CI machine that backlog takes well over 10 s, so wait up to 45.
        deadline = time.monotonic() + 45
        while app.state.streams:
            assert time.monotonic() < deadline, "the stream handler is still running"
            time.sleep(0.05)
        s.settimeout(5)
        replies = b""
        while len(replies) < 50_000_000:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            replies += chunk
        s.close()
    answered = replies.count(b'"type":"result"')
    assert 0 < answered < sent  # the rest were never taken off the socket, let alone queued
    assert any("stopped reading" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]


def test_limits_validate_their_new_fields():
    from emolens.errors import ConfigError

    with pytest.raises(ConfigError, match="read_timeout"):
        ServerLimits(read_timeout=0)
    with pytest.raises(ConfigError, match="pixel_budget"):
        ServerLimits(max_pixels=10, pixel_budget=5)
    assert ServerLimits(read_timeout=0.5).read_timeout == 0.5
