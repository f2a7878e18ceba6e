"""`emolens serve`: the CLI hands its options to `emolens.serving.serve`, which loads the model
once, builds the app with those limits and gives it to uvicorn (replaced here by a recorder)."""

from __future__ import annotations

import logging
import warnings

import pytest

from emolens.pipeline.defaults import PIPELINE

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from emolens.cli import main

# The server answers only to its own names (DNS rebinding); TestClient says "testserver" unless told.
LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch="simple_cnn", name="cli-cnn", version="2")), tmp_path_factory.mktemp("m") / "cli.safetensors")


@pytest.fixture
def launched(monkeypatch):
    """Record what would have been served instead of serving it."""
    import uvicorn

    import emolens.pipeline
    from emolens.runtime import devices

    calls: dict = {"run": [], "cores": [], "recognizers": 0}
    real = emolens.pipeline.EmotionRecognizer

    class Counting(real):
        def __init__(self, *args, **kwargs):
            calls["recognizers"] += 1
            calls["recognizer_args"] = (args, kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(emolens.pipeline, "EmotionRecognizer", Counting)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls["run"].append((app, kw)))
    # Record the thread plan instead of applying it: torch's thread count is process-wide.
    monkeypatch.setattr(devices, "configure_threads", lambda threads=None, *, workers=1: calls["cores"].append(workers))
    return calls


def test_serve_passes_options_and_loads_the_model_once(launched, model_path):
    code = main(["serve", "--model", str(model_path), "--port", "8123", "--workers", "3", "--max-queue", "5",
                 "--max-upload-bytes", "100000", "--max-pixels", "1000000", "--log-level", "warning"])
    assert code == 0
    (app, kw), = launched["run"]
    assert (kw["host"], kw["port"], kw["log_level"]) == ("127.0.0.1", 8123, "warning")
    assert kw["ws_max_size"] > 100_000
    limits = app.state.limits
    assert (limits.workers, limits.max_queue, limits.max_upload_bytes, limits.max_pixels) == (3, 5, 100_000, 1_000_000)
    assert launched["cores"] == [3]
    assert launched["recognizer_args"][1] == {"model": model_path, "detector": PIPELINE.detector, "backend": "torch", "min_face_size": 32}
    with TestClient(app, base_url=LOCAL) as client:
        for _ in range(3):
            assert client.get("/v1/model").json()["name"] == "cli-cnn"
            assert client.post("/v1/predict", content=b"x" * 100_001, headers={"content-type": "image/jpeg"}).status_code == 413
    assert launched["recognizers"] == 1  # once, however many requests


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "0"], "port must be in 1..65535"),
        (["--workers", "0"], "workers must be an integer >= 1"),
        (["--max-upload-bytes", "0"], "max_upload_bytes"),
    ],
)
def test_bad_options_exit_1_before_loading_anything(launched, model_path, capsys, args, words):
    assert main(["serve", "--model", str(model_path), *args]) == 1
    assert words in capsys.readouterr().err
    assert launched["run"] == [] and launched["recognizers"] == 0


def test_missing_model_file_is_a_one_line_error(launched, tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "nope.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emolens: error:") and "nope.safetensors" in err
    assert launched["run"] == []


def test_binding_a_public_address_warns(launched, model_path, caplog):
    with caplog.at_level(logging.WARNING, logger="emolens.serving"):
        assert main(["serve", "--model", str(model_path), "--host", "0.0.0.0"]) == 0
    assert "no authentication" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emolens.serving"):
        assert main(["serve", "--model", str(model_path), "--host", "::1"]) == 0
    assert "no authentication" not in caplog.text


def test_min_face_size_reaches_every_workers_detector(launched, model_path):
    assert main(["serve", "--model", str(model_path), "--min-face-size", "64"]) == 0
    (app, _), = launched["run"]
    assert app.state.limits.min_face_size == 64
    assert launched["recognizer_args"][1]["min_face_size"] == 64
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/healthz").json()["limits"]["min_face_size"] == 64
        assert client.post("/v1/predict", content=b"", headers={"content-type": "image/jpeg"}).status_code == 422
    assert app.state.recognizer.detector.min_face_size == 64
