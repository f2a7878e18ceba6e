"""The on-disk cache of ONNX exports (`emolens.runtime.onnx.cached_onnx_backend`): one export per
model file, damaged entries rebuilt, an unwritable cache never failing a run."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import emolens.runtime.onnx as onnx_rt
from emolens.paths import CACHE_ENV, cache_dir
from emolens.runtime import create_backend


def _model_file(folder: Path, seed: int) -> Path:
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(seed)
    return save_model(build_model(ModelConfig(arch="simple_cnn", name=f"cache-{seed}")).eval(), folder / f"m{seed}.safetensors")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return _model_file(tmp_path_factory.mktemp("m"), seed=1)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)


def _fresh_proba(model_file: Path, faces: np.ndarray) -> np.ndarray:
    from emolens.models import load_model

    return onnx_rt.OnnxBackend(onnx_rt.export_onnx_bytes(load_model(model_file))).predict_proba(faces)


def _no_export(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("exported although the cache holds this model")

    monkeypatch.setattr(onnx_rt, "export_onnx_bytes", fail)


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / onnx_rt.CACHE_FOLDER).iterdir())


def test_cache_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "emolens"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec says to ignore it
    assert cache_dir() == Path.home() / ".cache" / "emolens"


def test_second_backend_reads_the_cache_and_agrees_with_a_fresh_export(model_file, cache, faces, monkeypatch):
    first = create_backend(model_file, "onnx")
    [entry] = _entries(cache)
    assert entry.suffix == ".onnx" and first.source == str(model_file)
    _no_export(monkeypatch)
    second = create_backend(model_file, "auto", device="cpu")
    assert second.name == "onnx" and second.source == str(model_file)
    assert second.config == first.config
    np.testing.assert_array_equal(second.predict_proba(faces), first.predict_proba(faces))
    monkeypatch.undo()
    np.testing.assert_array_equal(second.predict_proba(faces), _fresh_proba(model_file, faces))
    assert not list((cache / onnx_rt.CACHE_FOLDER).glob("*.tmp"))  # the temp file was renamed


def test_damaged_entry_is_exported_again(model_file, cache, faces):
    create_backend(model_file, "onnx")
    [entry] = _entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 3])  # a torn write
    backend = create_backend(model_file, "onnx")
    assert entry.read_bytes() == good
    np.testing.assert_array_equal(backend.predict_proba(faces), _fresh_proba(model_file, faces))
    entry.write_bytes(b"not an onnx model")
    create_backend(model_file, "onnx")
    assert entry.read_bytes() == good


def test_unwritable_cache_still_runs_and_warns(model_file, tmp_path, monkeypatch, faces):
    blocker = tmp_path / "a-file"
    blocker.write_text("the user's file, not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocker))  # mkdir fails here even for root, unlike chmod
    with pytest.warns(UserWarning, match=f"could not cache the ONNX export.*{CACHE_ENV}"):
        backend = create_backend(model_file, "onnx")
    np.testing.assert_array_equal(backend.predict_proba(faces), _fresh_proba(model_file, faces))
    assert blocker.read_text() == "the user's file, not a folder"


def test_folder_in_the_entrys_place_is_left_alone(model_file, cache):
    entry = onnx_rt.export_cache_path(model_file)
    (entry / "keep").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_backend(model_file, "onnx")
    assert (entry / "keep").is_dir() and any("could not cache" in str(w.message) for w in caught)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp file left behind


def test_other_model_file_or_opset_gets_its_own_entry(model_file, cache, tmp_path):
    other = _model_file(tmp_path, seed=2)
    create_backend(model_file, "onnx")
    create_backend(other, "onnx")
    assert len(_entries(cache)) == 2
    same_bytes = tmp_path / "copy.safetensors"
    same_bytes.write_bytes(model_file.read_bytes())
    assert onnx_rt.export_cache_path(same_bytes) == onnx_rt.export_cache_path(model_file)  # keyed on content, not path
    assert onnx_rt.export_cache_path(model_file, opset=18) != onnx_rt.export_cache_path(model_file)


def test_in_memory_models_are_not_cached(model_file, cache):
    from emolens.models import load_model

    assert create_backend(load_model(model_file), "onnx").source == "<in memory>"
    assert not cache.exists()


def test_a_cache_hit_runs_without_importing_torch(model_file, cache, faces, tmp_path):
    # The point of the cache: `emolens predict/video` on the CPU starts without PyTorch (1.5-2 s).
    import json
    import os
    import subprocess
    import sys

    from emolens.runtime.devices import _GPU_DRIVER_PATHS

    if any(os.path.exists(p) for p in _GPU_DRIVER_PATHS):
        pytest.skip("a GPU driver is present: backend auto asks PyTorch whether CUDA works")
    expected = create_backend(model_file, "onnx").predict_proba(faces)  # fills the cache
    np.save(tmp_path / "faces.npy", faces)
    code = (
        "import json, sys, numpy as np\n"
        "from emolens.runtime import create_backend\n"
        f"b = create_backend({str(model_file)!r}, 'auto', device='auto')\n"
        f"p = b.predict_proba(np.load({str(tmp_path / 'faces.npy')!r}))\n"
        "print(json.dumps({'name': b.name, 'proba': p.tolist(), 'heavy': sorted(m for m in ('torch', 'onnx', 'scipy') if m in sys.modules)}))\n"
    )
    env = {**os.environ, CACHE_ENV: str(cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["name"] == "onnx" and out["heavy"] == [], out["heavy"]
    assert np.array_equal(np.asarray(out["proba"], np.float32), expected)
