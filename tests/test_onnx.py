"""ONNX export: a self-describing file that onnxruntime runs and that agrees with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolens.errors import ConfigError, ModelError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")

from emolens.cli import main  # noqa: E402
from emolens.runtime import OnnxBackend, TorchBackend, create_backend, export_onnx  # noqa: E402


def _lfw_faces() -> np.ndarray:
    """Real faces: the 100 LFW faces skimage ships (25x25), prepared as the model expects."""
    from skimage import data

    from emolens.preprocessing import PreprocessConfig, prepare_face

    return np.stack([prepare_face(x, PreprocessConfig()) for x in data.lfw_subset()[:100]])


def _peaked(arch: str):
    """A random model whose scores differ between faces like a trained model's: batch-norm
    statistics taken from real faces, and a scaled-up last layer."""
    import torch

    from emolens.models import ModelConfig, build_model
    from emolens.preprocessing import normalize

    torch.manual_seed(1)
    model = build_model(ModelConfig(arch=arch, name=f"random-{arch}", temperature=1.3))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a plain average over the batch below
    with torch.no_grad():
        if bns:
            model.train()(normalize(_lfw_faces(), model.emolens_config.preprocess))
        model.head[-1].weight.mul_(40.0 if not bns else 4.0)
    return model.eval()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return _lfw_faces()


def _saved(arch: str, folder):
    from emolens.models import save_model

    return save_model(_peaked(arch), folder / f"{arch}.safetensors")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return _saved("simple_cnn", tmp_path_factory.mktemp("m"))


@pytest.mark.parametrize("arch", ["simple_cnn", "vgg_fer_small"])
def test_fp32_export_agrees_with_pytorch(arch, faces, tmp_path):
    from emolens.models import load_model

    model_file = _saved(arch, tmp_path)
    path = export_onnx(model_file, tmp_path / "m.onnx")
    torch_p = TorchBackend(load_model(model_file)).predict_proba(faces)
    onnx_b = OnnxBackend(path)
    onnx_p = onnx_b.predict_proba(faces)
    assert onnx_p.shape == (100, 7)
    np.testing.assert_array_equal(onnx_p.argmax(1), torch_p.argmax(1))  # the same top label for every face
    assert np.abs(onnx_p - torch_p).max() < 1e-3
    assert len(set(torch_p.argmax(1))) > 1  # the comparison is not between constant answers
    # Dynamic batch: one face and the batch give the same scores.
    np.testing.assert_allclose(onnx_b.predict_proba(faces[:1]), onnx_p[:1], atol=1e-5)


def test_onnx_file_carries_the_model_config(model_file, tmp_path):
    from emolens.models import read_model_config

    path = export_onnx(model_file, tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    cfg = read_model_config(model_file)
    assert json.loads(meta["emolens_config"]) == json.loads(json.dumps(cfg.to_dict()))
    backend = OnnxBackend(path)
    assert backend.config == cfg and backend.config.temperature == 1.3 and backend.quantization == "none"


def test_int8_static_is_smaller_and_close(model_file, faces, tmp_path):
    fp32 = export_onnx(model_file, tmp_path / "m.onnx")
    q = export_onnx(model_file, tmp_path / "m.int8.onnx", int8=True, calibration=faces[:64])
    assert q.stat().st_size < fp32.stat().st_size / 2.5
    qb = OnnxBackend(q)
    assert qb.quantization.startswith("static int8, calibrated on 64 faces")
    p32, p8 = OnnxBackend(fp32).predict_proba(faces), qb.predict_proba(faces)
    assert np.abs(p32 - p8).mean() < 0.02
    # The top label survives quantisation wherever fp32 is not a near-tie (a random model has
    # many near-ties; the benchmark checks accuracy of a trained model on FER-2013).
    top2 = np.sort(p32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.02
    assert clear.sum() >= 20
    assert (p32.argmax(1) == p8.argmax(1))[clear].mean() >= 0.9


def _class_folders(faces: np.ndarray, root) -> list:
    """A folder dataset of real faces: two class folders, PNGs named by index."""
    from PIL import Image

    for i, f in enumerate(faces):
        (root / ("happy" if i % 2 else "sad")).mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(root / ("happy" if i % 2 else "sad") / f"{i:03d}.png")
    return root


def test_calibration_faces_are_the_training_rows_of_the_one_data_path(faces, tmp_path):
    from emolens.data import load_dataset
    from emolens.data.splits import VAL_FRACTION, training_rows
    from emolens.export.calibration import load_calibration_faces
    from emolens.preprocessing import PreprocessConfig

    folder = _class_folders(faces[:40], tmp_path / "calib")
    calib = load_calibration_faces(folder, PreprocessConfig())
    ds = load_dataset(folder, progress=False)
    rows = training_rows(ds, val_fraction=VAL_FRACTION)
    assert len(calib) == len(rows["train"]) < 40  # val and test were carved off, as for training
    held_out = {ds.images[i].tobytes() for i in (*rows["val"], *rows["test"])}
    train = {ds.images[i].tobytes() for i in rows["train"]}
    assert all(f.tobytes() in train and f.tobytes() not in held_out for f in calib)
    assert len(load_calibration_faces(folder, PreprocessConfig(), limit=5)) == 5


def test_int8_needs_faces_or_asks_for_dynamic(model_file, faces, tmp_path):
    folder = _class_folders(faces[:40], tmp_path / "calib")
    (folder / "sad" / "broken.png").write_bytes(b"")  # skipped with a warning, not fatal
    with pytest.warns(UserWarning, match="broken.png"):
        q = OnnxBackend(export_onnx(model_file, tmp_path / "a.onnx", int8=True, calibration=folder))
    assert q.quantization.startswith("static int8, calibrated on ") and q.quantization.endswith(" faces")
    with pytest.raises(ConfigError, match="static int8 calibrates on real faces: pass --data"):
        export_onnx(model_file, tmp_path / "b.onnx", int8=True)  # never a silent, slower dynamic model
    assert not (tmp_path / "b.onnx").exists()
    d = OnnxBackend(export_onnx(model_file, tmp_path / "b.onnx", int8=True, dynamic=True))
    assert d.quantization.startswith("dynamic int8")
    assert d.predict_proba(faces).shape == (100, 7)
    with pytest.raises(ConfigError, match="not both"):
        export_onnx(model_file, tmp_path / "c.onnx", int8=True, dynamic=True, calibration=faces)


def test_export_and_backend_errors(model_file, tmp_path):
    path = export_onnx(model_file, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="already exists"):
        export_onnx(model_file, path)
    export_onnx(model_file, path, overwrite=True)
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        export_onnx(model_file, tmp_path / "m.bin")
    with pytest.raises(ModelError, match="no such ONNX model file"):
        OnnxBackend(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="could not load"):
        OnnxBackend(junk)
    plain = onnx.load(str(path))
    del plain.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(plain, str(bare))
    with pytest.raises(ModelError, match="carries no emolens config"):
        OnnxBackend(bare)
    with pytest.raises(ConfigError, match="unknown backend"):
        create_backend(model_file, backend="tensorrt")
    assert isinstance(create_backend(path), OnnxBackend)  # an .onnx file always runs on onnxruntime


@pytest.mark.slow
def test_cli_export(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", str(model_file), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    expected = tmp_path / f"{model_file.stem}.onnx"
    assert expected.exists() and "fp32" in out
    assert main(["export", "--model", str(model_file)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--model", str(model_file), "--int8", "-o", "q.onnx"]) == 1  # no faces to calibrate on
    assert "pass --data DATASET" in capsys.readouterr().err and not (tmp_path / "q.onnx").exists()
    assert main(["export", "--model", str(model_file), "--int8", "--dynamic", "-o", "q.onnx"]) == 0
    assert "dynamic int8" in capsys.readouterr().out and (tmp_path / "q.onnx").exists()
    _class_folders(_lfw_faces()[:30], tmp_path / "faces")
    assert main(["export", "--model", str(model_file), "--int8", "--data", "faces", "-o", "s.onnx"]) == 0
    assert "static int8, calibrated on" in capsys.readouterr().out


def test_one_definition_of_each_choice():
    """The CLI's --backend and --format choices are the library's enums, not copies of them."""
    from emolens.cli import compare, export, faces
    from emolens.export.formats import DatasetFormat, ModelFormat
    from emolens.runtime.backends import BACKENDS, BackendName

    assert faces.Backend is BackendName and set(BACKENDS) == {"torch", "onnx"}
    assert export.ModelFormat is ModelFormat and compare.DatasetFormat is DatasetFormat
    assert not hasattr(faces, "ExportFormat") and not hasattr(compare, "ExportFormat")
