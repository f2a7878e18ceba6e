"""Phone photo formats: HEIC (the iPhone camera's, with the `heif` extra) and AVIF read like JPEG,
in files, folders, bytes and HTTP uploads; without the extra, a HEIC is reported with the
install line and the batch goes on."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from emolens.cli import main
from emolens.errors import DataError
from emolens.preprocessing import load_image, read_heif_when_needed

pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the heif extra) is not installed: pip install -e '.[dev]'")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def astronaut():
    from emolens.pipeline.samples import astronaut

    return astronaut()


def heic_bytes(rgb: np.ndarray, orientation: int = 1) -> bytes:
    """A HEIC file as a phone writes one; orientation: its EXIF rotation (6: turn 90 degrees clockwise to show)."""
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "HEIF", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def test_heic_and_avif_read_like_the_jpeg(astronaut, tmp_path):
    data = heic_bytes(astronaut)
    assert data[4:12] == b"ftypheic"
    (tmp_path / "a.heic").write_bytes(data)
    Image.fromarray(astronaut).save(tmp_path / "a.avif", quality=90)
    for image in (load_image(tmp_path / "a.heic"), load_image(data), load_image(tmp_path / "a.avif")):
        assert image.shape == astronaut.shape
        assert np.abs(image.astype(int) - astronaut).mean() < 6  # lossy, but the same picture


def test_a_sideways_iphone_photo_is_read_upright(astronaut):
    """An iPhone stores a portrait photo as it left the sensor, with the turn to show it in its
    metadata: the photo comes out upright, as JPEG's EXIF rotation does."""
    import cv2

    sensor = np.ascontiguousarray(cv2.rotate(astronaut, cv2.ROTATE_90_COUNTERCLOCKWISE))
    image = load_image(heic_bytes(sensor, orientation=6))
    assert image.shape == astronaut.shape
    assert np.abs(image.astype(int) - astronaut).mean() < 6


def test_predict_reads_a_folder_of_phone_photos(astronaut, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "IMG_0001.HEIC").write_bytes(heic_bytes(astronaut))
    Image.fromarray(astronaut).save(photos / "IMG_0002.avif", quality=90)
    Image.fromarray(astronaut).save(photos / "IMG_0003.jpg", quality=90)
    out = tmp_path / "out"
    assert main(["predict", str(photos), "--out", str(out), "--no-save"]) == 0
    rows = json.loads((out / "predictions.json").read_text())
    assert sorted(r["image"] for r in rows) == ["IMG_0001.HEIC", "IMG_0002.avif", "IMG_0003.jpg"]  # one face each
    boxes = {r["image"]: np.array([r["box"][k] for k in ("x", "y", "w", "h")]) for r in rows}
    assert np.abs(boxes["IMG_0001.HEIC"] - boxes["IMG_0003.jpg"]).max() <= 6


def test_without_the_extra_a_heic_is_reported_and_the_batch_goes_on(astronaut, tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "IMG_0001.HEIC").write_bytes(heic_bytes(astronaut))
    Image.fromarray(astronaut).save(photos / "IMG_0002.jpg", quality=90)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if not installed
    with pytest.raises(DataError, match=r"IMG_0001.HEIC: reading HEIF/HEIC photos .* pip install 'emolens\[heif\]'"):
        load_image(photos / "IMG_0001.HEIC")
    read_heif_when_needed(b"\xff\xd8\xff\xe0" + bytes(8), "a.jpg")  # anything else never asks for it
    out = tmp_path / "out"
    assert main(["predict", str(photos), "--out", str(out), "--no-save"]) == 0
    captured = capsys.readouterr()
    assert "IMG_0001.HEIC: reading HEIF/HEIC photos" in captured.err and "emolens[heif]" in captured.err
    assert [r["image"] for r in json.loads((out / "predictions.json").read_text())] == ["IMG_0002.jpg"]


def test_the_server_reads_a_heic_upload(astronaut):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from emolens.pipeline import EmotionRecognizer
    from emolens.serving import create_app

    app = create_app(EmotionRecognizer(), workers=1)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        reply = client.post("/v1/predict", files={"file": ("IMG_0001.HEIC", heic_bytes(astronaut), "image/heic")})
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["faces"]) == 1
        sys.modules["pillow_heif"], kept = None, sys.modules["pillow_heif"]  # as if the extra were missing
        try:
            missing = client.post("/v1/predict", files={"file": ("IMG_0001.HEIC", heic_bytes(astronaut), "image/heic")})
        finally:
            sys.modules["pillow_heif"] = kept
    assert missing.status_code == 422 and "emolens[heif]" in missing.json()["detail"], missing.text
