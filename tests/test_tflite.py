"""TFLite export: the shipped model as a .tflite file that the LiteRT interpreter runs, agreeing
with PyTorch on real faces, carrying its config, and int8 within 0.5 points on FER-2013.

Needs the `tflite` extra (litert-torch, ai-edge-litert), which lives in its own environment:
`make test-tflite`. Elsewhere these tests skip, except the one for the missing extra's message.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from emolens.cli import main
from emolens.errors import ConfigError, ModelError

HAVE_TFLITE = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"))
needs_tflite = pytest.mark.skipif(
    not HAVE_TFLITE, reason="the tflite extra is not installed (litert-torch, ai-edge-litert): run `make test-tflite`"
)


def test_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # as if not installed: importing it raises ImportError
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--format", "tflite"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'emolens[tflite]'" in err and "TFLite export" in err
    assert not list(tmp_path.iterdir())
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    from emolens.runtime import create_backend

    with pytest.raises(ConfigError, match=r"the TFLite backend .*pip install 'emolens\[tflite\]'"):
        create_backend(tmp_path / "model.tflite")


# -- with the extra ---------------------------------------------------------------------------------


def _real_faces() -> np.ndarray:
    """The 100 LFW face photos scikit-image ships, prepared as the model expects (48x48 gray)."""
    from skimage import data

    from emolens.preprocessing import PreprocessConfig, prepare_face

    return np.stack([prepare_face(x, PreprocessConfig()) for x in data.lfw_subset()[:100]])


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    pytest.importorskip("skimage")
    return _real_faces()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, faces):
    """The shipped model as fp32 and static int8 .tflite files (int8 calibrated on 50 LFW faces,
    the other 50 are left to compare on)."""
    if not HAVE_TFLITE:
        pytest.skip("the tflite extra is not installed: run `make test-tflite`")
    from emolens.export import export_model

    folder = tmp_path_factory.mktemp("tflite")
    fp32 = export_model(None, folder / "default.tflite", format="tflite")
    int8 = export_model(None, folder / "default.int8.tflite", format="tflite", int8=True, calibration=faces[:50])
    return fp32, int8


@pytest.fixture(scope="module")
def torch_backend():
    from emolens.models import load_model
    from emolens.runtime import TorchBackend

    return TorchBackend(load_model(None))


def _private_test(fer_archive, limit: int | None = None):
    from emolens.data import load_dataset

    test = load_dataset(fer_archive, progress=False).subset("test")
    return (test.images, test.labels) if limit is None else (test.images[:limit], test.labels[:limit])


def _assert_agrees(lite, torch_p):
    np.testing.assert_array_equal(lite.argmax(1), torch_p.argmax(1))  # the same top label for every face
    assert np.abs(lite - torch_p).max() < 1e-3
    assert len(set(torch_p.argmax(1))) > 2  # not a comparison of constant answers


@needs_tflite
def test_fp32_agrees_with_pytorch_on_real_faces(exported, faces, torch_backend):
    from emolens.runtime.tflite import TfliteBackend

    lite = TfliteBackend(exported[0].path)
    scores = lite.predict_proba(faces)
    assert scores.shape == (100, 7)
    _assert_agrees(scores, torch_backend.predict_proba(faces))
    # Dynamic batch: one face, an odd batch and the whole set give the same scores.
    np.testing.assert_allclose(lite.predict_proba(faces[:1]), scores[:1], atol=1e-6)
    np.testing.assert_allclose(lite.predict_proba(faces[3:40]), scores[3:40], atol=1e-6)


@needs_tflite
@pytest.mark.fer2013
def test_fp32_agrees_with_pytorch_on_fer2013_private_test(exported, torch_backend, fer_archive):
    from emolens.runtime.tflite import TfliteBackend

    images, _ = _private_test(fer_archive, limit=600)
    _assert_agrees(TfliteBackend(exported[0].path).predict_proba(images), torch_backend.predict_proba(images))


@needs_tflite
def test_photo_through_the_recognizer_matches_pytorch(exported, torch_backend):
    """A real photo end to end: the same faces, labels and scores from a .tflite --model."""
    from skimage import data

    from emolens.pipeline import EmotionRecognizer

    photo = data.astronaut()
    lite = EmotionRecognizer(exported[0].path, detector="haar").predict(photo, color_order="rgb")
    ref = EmotionRecognizer(None, detector="haar", backend="torch").predict(photo, color_order="rgb")
    assert type(EmotionRecognizer(exported[0].path, detector="haar").backend).__name__ == "TfliteBackend"
    assert len(lite.faces) == len(ref.faces) >= 1
    for a, b in zip(lite.faces, ref.faces, strict=True):
        assert a.label == b.label and a.box == b.box
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-3


@needs_tflite
def test_the_file_carries_the_model_config(exported):
    from emolens.export.metadata import META_KEY
    from emolens.models import default_model_path, read_model_config
    from emolens.runtime import create_backend
    from emolens.runtime.tflite import TfliteBackend, read_metadata

    fp32, int8 = exported
    cfg = read_model_config(default_model_path())
    meta = read_metadata(fp32.path.read_bytes(), str(fp32.path))
    assert json.loads(meta[META_KEY]) == json.loads(json.dumps(cfg.to_dict()))
    backend = create_backend(fp32.path)  # a .tflite file always runs on LiteRT
    assert isinstance(backend, TfliteBackend) and backend.config == cfg and backend.quantization == "none"
    assert backend.config.temperature == cfg.temperature and backend.config.labels == cfg.labels
    q = TfliteBackend(int8.path)
    assert q.config == cfg and q.quantization == "static int8, calibrated on 50 faces" == int8.quantization
    assert int8.path.stat().st_size < fp32.path.stat().st_size / 3  # int8 weights


@needs_tflite
def test_int8_keeps_the_top_label_on_real_faces(exported, faces):
    from emolens.runtime.tflite import TfliteBackend

    held_out = faces[50:]  # not calibrated on
    p32, p8 = TfliteBackend(exported[0].path).predict_proba(held_out), TfliteBackend(exported[1].path).predict_proba(held_out)
    assert np.abs(p32 - p8).mean() < 0.02
    top2 = np.sort(p32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05
    assert clear.sum() >= 20
    assert (p32.argmax(1) == p8.argmax(1))[clear].mean() >= 0.95


@needs_tflite
@pytest.mark.fer2013
@pytest.mark.slow
def test_int8_private_test_accuracy_within_half_a_point(exported, fer_archive, tmp_path):
    """The int8 file as `emolens export --int8 --data archive.zip` makes it: 512 training faces."""
    from emolens.export import export_model
    from emolens.runtime.tflite import TfliteBackend

    int8 = export_model(None, tmp_path / "q.tflite", format="tflite", int8=True, calibration=fer_archive)
    assert int8.quantization == "static int8, calibrated on 512 faces"
    images, labels = _private_test(fer_archive)
    acc = {k: 100 * float((TfliteBackend(p).predict_proba(images).argmax(1) == labels).mean()) for k, p in (("fp32", exported[0].path), ("int8", int8.path))}
    assert abs(acc["int8"] - acc["fp32"]) <= 0.5, acc


@needs_tflite
def test_damaged_foreign_and_mismatched_files_are_refused(exported, tmp_path):
    from ai_edge_litert.tools import flatbuffer_utils

    from emolens.export.metadata import META_KEY
    from emolens.runtime.tflite import TfliteBackend, _with_metadata

    good = exported[0].path.read_bytes()
    with pytest.raises(ModelError, match="no such TFLite model file"):
        TfliteBackend(tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="not a TFLite model"):
        TfliteBackend(b"garbage" * 10, source="junk.tflite")
    with pytest.raises(ModelError, match=r"junk2\.tflite: damaged TFLite file"):
        TfliteBackend(good[:8] + b"\xff" * 64, source="junk2.tflite")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(good))
    model.metadata = [m for m in model.metadata if m.name.decode() != META_KEY]
    bare = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    with pytest.raises(ModelError, match=r"bare\.tflite: TFLite model carries no emolens config; export it with `emolens export --format tflite`"):
        TfliteBackend(bare, source="bare.tflite")
    with pytest.raises(ModelError, match=r"bad\.tflite: emolens_config metadata is not valid JSON"):
        TfliteBackend(_with_metadata(good, {META_KEY: "{not json"}), source="bad.tflite")
    cfg = json.loads(json.dumps(TfliteBackend(good).config.to_dict()))
    cfg["labels"] = cfg["labels"][:6]  # a config that disagrees with the graph's 7 outputs
    with pytest.raises(ModelError, match=r"six\.tflite: output is float32 \[.*\]; its config's 6 labels need \[batch, 6\]"):
        TfliteBackend(_with_metadata(good, {META_KEY: json.dumps(cfg)}), source="six.tflite")


@needs_tflite
@pytest.mark.slow
def test_cli_export_tflite(tmp_path, faces, capsys, monkeypatch):
    from PIL import Image

    for i, f in enumerate(faces[:30]):  # a small folder dataset of real faces to calibrate on
        (tmp_path / "faces" / ("happy" if i % 2 else "sad")).mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(tmp_path / "faces" / ("happy" if i % 2 else "sad") / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--format", "tflite", "--int8", "--data", "faces"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "default.int8.tflite").exists() and "static int8, calibrated on" in out and "default.int8.tflite" in out
    assert main(["export", "--format", "tflite", "--int8", "--data", "faces"]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--format", "tflite", "-o", "m.onnx"]) == 1
    assert "must end in .tflite" in capsys.readouterr().err
    assert main(["export", "--format", "tflite", "--int8"]) == 1  # no faces: says what to pass
    assert "pass --data DATASET" in capsys.readouterr().err
