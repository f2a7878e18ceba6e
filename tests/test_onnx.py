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


def test_int8_from_a_folder_of_faces_and_dynamic_fallback(model_file, faces, tmp_path):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    for i, f in enumerate(faces[:20]):
        Image.fromarray(f).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"")  # skipped, not fatal
    q = OnnxBackend(export_onnx(model_file, tmp_path / "a.onnx", int8=True, calibration=folder))
    assert q.quantization == "static int8, calibrated on 20 faces"
    d = OnnxBackend(export_onnx(model_file, tmp_path / "b.onnx", int8=True))
    assert d.quantization.startswith("dynamic int8")
    assert d.predict_proba(faces).shape == (100, 7)


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
    assert main(["export", "--model", str(model_file), "--int8", "-o", "q.onnx"]) == 0
    assert "dynamic int8" in capsys.readouterr().out and (tmp_path / "q.onnx").exists()
