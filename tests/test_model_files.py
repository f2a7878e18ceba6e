"""Model files are checked before they are trusted (issue 14, "Model files" and "Missing extras").

Each test hands `load_model` (or the ONNX backend, or the CLI) one file a careless user or an
attacker could produce, and expects a ModelError naming the file and the field, raised before
any large allocation, never a raw RuntimeError / JSONDecodeError / TypeError, and never a model
that loads and then answers NaN.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emolens.errors import ConfigError, ModelError
from emolens.models import ModelConfig, build_model, load_model, read_model_config, save_model
from emolens.models import io as model_io

SMALL = {"widths": [8, 16, 32], "hidden": 32, "dropout": 0.1}  # a vgg_fer of 20k parameters


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vgg_fer", arch_kwargs=SMALL, name="small", temperature=1.5))
    return save_model(model, tmp_path_factory.mktemp("m") / "small.safetensors")


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory) -> Path:
    """simple_cnn at 48x48: its dense layer grows with the input side squared (20 MB fp32 here)."""
    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch="simple_cnn")), tmp_path_factory.mktemp("c") / "cnn.safetensors", half=True)


def _parts(src: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = f.metadata()
    return tensors, json.loads(meta["emolens_config"])


def _rewrite(src: Path, dst: Path, edit=None, tensors_edit=None, raw: str | None = None) -> Path:
    """A copy of `src` whose config (or raw metadata text, or tensors) was edited."""
    tensors, cfg = _parts(src)
    if edit:
        edit(cfg)
    if tensors_edit:
        tensors_edit(tensors)
    save_file(tensors, str(dst), metadata={"emolens_config": raw if raw is not None else json.dumps(cfg)})
    return dst


def _refused(path: Path, *patterns: str) -> str:
    with pytest.raises(ModelError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for p in patterns:
        assert p in msg, msg
    return msg


# -- the shipped model -----------------------------------------------------------------------------


def test_shipped_default_model_still_loads_and_answers_finite_scores() -> None:
    from emolens.inference import predict_proba

    model = load_model()
    cfg = read_model_config(model_io.default_model_path())
    assert model.emolens_config == cfg and cfg.arch == "vgg_fer_small"
    probs = predict_proba(model, np.full((2, 48, 48), 128, np.uint8))
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_a_valid_file_round_trips(small_file: Path) -> None:
    model = load_model(small_file)
    assert model.emolens_config.arch_kwargs == {"widths": (8, 16, 32), "hidden": 32, "dropout": 0.1}
    assert model.emolens_config.temperature == 1.5


# -- sizes and shapes: refused before anything large is built --------------------------------------


def _meta_only(monkeypatch) -> list[str]:
    """Record the default device of every build_model call: only meta builds may precede a refusal."""
    devices: list[str] = []
    real = model_io.build_model

    def spy(config):
        devices.append(str(torch.get_default_device()))
        return real(config)

    monkeypatch.setattr(model_io, "build_model", spy)
    return devices


def test_input_size_1024_claim_is_refused_at_once(cnn_file, tmp_path, monkeypatch) -> None:
    def claim(c):  # simple_cnn at 1024 would be a 2.1-billion-parameter dense layer: 8.4 GB
        c["preprocess"].update(image_size=1024, input_size=1024)

    devices = _meta_only(monkeypatch)
    start = time.perf_counter()
    _refused(_rewrite(cnn_file, tmp_path / "big.safetensors", claim), "preprocess.image_size", "[8, 256]", "1024")
    assert time.perf_counter() - start < 5 and devices == []


def test_size_within_bounds_but_not_the_tensors_is_refused_on_the_meta_device(cnn_file, tmp_path, monkeypatch) -> None:
    def claim(c):  # 256: a 134M-parameter dense layer (537 MB) the 48x48 weights cannot fill
        c["preprocess"].update(image_size=256, input_size=256)

    devices = _meta_only(monkeypatch)
    start = time.perf_counter()
    _refused(_rewrite(cnn_file, tmp_path / "256.safetensors", claim), "head.1.weight is [1024, 4608], expected [1024, 131072]")
    assert time.perf_counter() - start < 5 and devices == ["meta"]


def test_wrong_label_count_is_named(small_file, tmp_path) -> None:
    path = _rewrite(small_file, tmp_path / "six.safetensors", lambda c: c["labels"].remove("disgust"))
    _refused(path, "labels:", "lists 6 emotions", "has 7 outputs")


def test_tensor_shape_mismatch_is_named(small_file, tmp_path, monkeypatch) -> None:
    devices = _meta_only(monkeypatch)
    path = _rewrite(small_file, tmp_path / "hidden.safetensors", lambda c: c["arch_kwargs"].update(hidden=64))
    _refused(path, "weights do not fit architecture 'vgg_fer'", "expected [64")
    path = _rewrite(small_file, tmp_path / "gone.safetensors", tensors_edit=lambda t: t.pop("head.3.weight"))
    _refused(path, "missing ['head.3.weight']")
    assert set(devices) == {"meta"}


def test_constructor_errors_become_model_errors(small_file, tmp_path) -> None:
    def resnet(c):
        c.update(arch="resnet_fer", arch_kwargs={"widths": [8, 16], "blocks": [1, 1, 1]})

    _refused(_rewrite(small_file, tmp_path / "r.safetensors", resnet), "cannot be built", "widths has 2 stages")


def test_unknown_arch_is_named_with_suggestions(small_file, tmp_path) -> None:
    _refused(_rewrite(small_file, tmp_path / "a.safetensors", lambda c: c.update(arch="vgg_ferr")), "arch:", "Did you mean 'vgg_fer'")


def test_non_finite_weights_are_refused(small_file, tmp_path) -> None:
    def poison(t):
        t["head.3.bias"][0] = float("nan")

    _refused(_rewrite(small_file, tmp_path / "nan.safetensors", tensors_edit=poison), "head.3.bias holds NaN")


def test_file_size_is_bounded(small_file, monkeypatch) -> None:
    monkeypatch.setattr(model_io, "MAX_MODEL_BYTES", 1000)
    _refused(small_file, "more than the 0 MiB a model file may hold")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_not_read(tmp_path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    _refused(fifo, "not a regular file")


# -- the metadata JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json {", "not valid JSON"),
        ("[1, 2, 3]", "must be a JSON object, found a list"),
        ("null", "must be a JSON object, found null"),
        ('"vgg_fer"', "must be a JSON object, found a string"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_metadata_that_is_not_a_json_object(small_file, tmp_path, raw, expected) -> None:
    _refused(_rewrite(small_file, tmp_path / "m.safetensors", raw=raw), expected)


def test_oversized_metadata(small_file, tmp_path) -> None:
    _refused(_rewrite(small_file, tmp_path / "m.safetensors", lambda c: c["training"].update(pad="x" * (1 << 20))), "at most 1048576 characters")


@pytest.mark.parametrize("value", [0, 0.0, float("nan"), float("inf"), -float("inf"), -1.0, 1e-300, 101, "1.0", True, None])
def test_temperature_must_be_finite_and_in_range(small_file, tmp_path, value) -> None:
    path = _rewrite(small_file, tmp_path / "t.safetensors", lambda c: c.update(temperature=value))
    _refused(path, "temperature: expected a finite number in [0.01, 100]")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("labels", ["angry", "angry", "fear", "happy", "neutral", "sad", "surprise"], "angry listed more than once"),
        ("labels", ["angry", "disgust", "fear", "joy", "neutral", "sad", "surprise"], "'joy' is not an emotion"),
        ("labels", "angry", "expected a list of 2 to 7"),
        ("labels", [1, 2], "1 is not an emotion"),
        ("arch", 7, "arch: expected a non-empty string"),
        ("arch_kwargs", [1], "arch_kwargs must be a JSON object"),
        ("preprocess", [48], "preprocess: expected a JSON object"),
        ("name", {"x": 1}, "name: expected a string"),
        ("metrics", [1], "metrics: expected a JSON object"),
        ("format_version", "1", "format_version: expected a positive integer"),
        ("format_version", 9, "newer than this emolens"),
        ("surprise", 1, "unknown keys ['surprise']"),
    ],
)
def test_field_types_are_checked(small_file, tmp_path, field, value, expected) -> None:
    _refused(_rewrite(small_file, tmp_path / "f.safetensors", lambda c: c.update({field: value})), expected)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"image_size": 4, "input_size": 4}, "preprocess.image_size: expected an integer in [8, 256], found 4"),
        ({"input_size": "48"}, "preprocess.input_size: expected an integer"),
        ({"input_size": True}, "preprocess.input_size: expected an integer"),
        ({"input_size": 48.0}, "preprocess.input_size: expected an integer"),
        ({"std": 0}, "preprocess.std: expected a finite number in [0.001, 1.0]"),
        ({"std": -0.25}, "preprocess.std"),
        ({"mean": float("nan")}, "preprocess.mean: expected a finite number"),
        ({"face_margin": float("inf")}, "preprocess.face_margin"),
        ({"input_size": 64}, "larger than image_size"),
        ({"resize": "bicubic"}, "unknown preprocessing keys ['resize']"),
    ],
)
def test_preprocessing_fields_are_bounded(small_file, tmp_path, edit, expected) -> None:
    _refused(_rewrite(small_file, tmp_path / "p.safetensors", lambda c: c["preprocess"].update(edit)), expected)


def test_non_finite_metrics_become_null_not_nan(small_file, tmp_path) -> None:
    path = _rewrite(small_file, tmp_path / "nan-metric.safetensors", lambda c: c["metrics"].update(val_nll=float("nan"), ok=0.5))
    cfg = load_model(path).emolens_config
    assert cfg.metrics == {"val_nll": None, "ok": 0.5}
    json.dumps(cfg.to_dict(), allow_nan=False)  # what the API would send: valid JSON


# -- arch_kwargs: an allow-list with bounds -------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "kwargs", "expected"),
    [
        ("vgg_fer", {"evil": 1}, "arch_kwargs.evil: not an argument a model file may set for 'vgg_fer'"),
        ("vgg_fer", {"hiden": 32}, "Did you mean 'hidden'"),
        ("vgg_fer", {"num_classes": 1000}, "arch_kwargs.num_classes: set by emolens"),
        ("vgg_fer", {"widths": [100_000]}, "arch_kwargs.widths[0]: expected an integer in [1, 2048]"),
        ("vgg_fer", {"widths": [8] * 50}, "expected a list of 1 to 6 ints"),
        ("vgg_fer", {"depth": 10_000}, "arch_kwargs.depth: expected an integer in [1, 8]"),
        ("vgg_fer", {"dropout": "0.5"}, "arch_kwargs.dropout: expected a number"),
        ("simple_cnn", {"dropout": float("nan")}, "arch_kwargs.dropout"),
        ("timm:resnet18", {"pretrained": True}, "not an argument a model file may set for 'timm:resnet18'"),
        ("timm:resnet18", {"pretrained_cfg_overlay": {"file": "/etc/passwd"}}, "Allowed: drop_path_rate, drop_rate, global_pool, img_size"),
        ("timm:vit_tiny_patch16_224", {"img_size": 4096}, "arch_kwargs.img_size: expected an integer in [16, 256]"),
    ],
)
def test_arch_kwargs_are_allow_listed(small_file, tmp_path, arch, kwargs, expected) -> None:
    path = _rewrite(small_file, tmp_path / "k.safetensors", lambda c: c.update(arch=arch, arch_kwargs=kwargs))
    _refused(path, expected)


def test_arch_kwargs_are_checked_when_training_builds_a_model_too() -> None:
    with pytest.raises(ModelError, match=r"arch_kwargs\.evil"):
        build_model(ModelConfig(arch="vgg_fer", arch_kwargs={"evil": 1}))


# -- what reaches the API can never be NaN --------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, float("nan"), float("inf"), -1.0])
def test_softmax_refuses_a_temperature_that_would_give_nan(temperature) -> None:
    from emolens.inference import softmax_with_temperature

    with pytest.raises(ModelError, match="temperature"):
        softmax_with_temperature(np.zeros((1, 7), np.float32), temperature)


def test_softmax_refuses_non_finite_logits() -> None:
    from emolens.inference import softmax_with_temperature

    with pytest.raises(ModelError, match="NaN or infinite logits"):
        softmax_with_temperature(np.array([[0.0, math.nan]], np.float32))
    probs = softmax_with_temperature(np.array([[1e4, -1e4]], np.float32), 0.01)  # extreme but finite
    assert np.isfinite(probs).all()


# -- ONNX files -----------------------------------------------------------------------------------


def _onnx_with_config(cfg: dict[str, Any], input_shape: list[Any], n_out: int = 7, input_name: str = "faces") -> bytes:
    """A tiny graph built with onnx.helper: mean-pool the faces, one MatMul to `n_out` logits."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((input_shape[1], n_out), np.float32), "w")  # (C, n_out): pooled channels to logits
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])], initializer=[w],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    entry = proto.metadata_props.add()
    entry.key, entry.value = "emolens_config", json.dumps(cfg)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _config_dict(**preprocess: Any) -> dict[str, Any]:
    cfg = ModelConfig(arch="simple_cnn").to_dict()
    cfg["preprocess"].update(preprocess)
    return cfg


@pytest.mark.parametrize(
    ("shape", "n_out", "name", "expected"),
    [
        (["batch", 1, 32, 32], 7, "faces", "input 'faces' is tensor(float) ['batch', 1, 32, 32]; its config (preprocess.input_size 48)"),
        (["batch", 3, 48, 48], 7, "faces", "needs tensor(float) [batch, 1, 48, 48]"),
        ([1, 1, 48, 48], 7, "faces", "with a dynamic batch"),
        (["batch", 1, 48, 48], 6, "faces", "its config's 7 labels need [batch, 7]"),
        (["batch", 1, 48, 48], 7, "input", "expected one input 'faces'"),
    ],
)
def test_onnx_with_the_wrong_input_or_output_shape_is_refused_at_load(tmp_path, shape, n_out, name, expected) -> None:
    pytest.importorskip("onnxruntime")
    from emolens.runtime.onnx import OnnxBackend

    path = tmp_path / "bad.onnx"
    path.write_bytes(_onnx_with_config(_config_dict(), shape, n_out, name))
    with pytest.raises(ModelError) as info:
        OnnxBackend(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_onnx_of_the_right_shape_loads_and_answers(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from emolens.runtime.onnx import OnnxBackend

    backend = OnnxBackend(_onnx_with_config(_config_dict(), ["batch", 1, 48, 48]), source="ok.onnx")
    assert backend.predict_proba(np.zeros((3, 48, 48), np.uint8)).shape == (3, 7)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(temperature=float("nan")), "temperature: expected a finite number"),
        (lambda c: c.update(labels=["angry", "angry"]), "listed more than once"),
        (lambda c: c["preprocess"].update(input_size=1024), "preprocess.input_size"),
    ],
)
def test_onnx_metadata_is_validated_like_safetensors(edit, expected) -> None:
    pytest.importorskip("onnxruntime")
    from emolens.runtime.onnx import OnnxBackend

    cfg = _config_dict()
    edit(cfg)
    with pytest.raises(ModelError, match=r"^bad\.onnx: .*" + expected.replace("(", r"\(").replace("[", r"\[")):
        OnnxBackend(_onnx_with_config(cfg, ["batch", 1, 48, 48]), source="bad.onnx")


def test_onnx_metadata_that_is_not_json(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from emolens.runtime.onnx import OnnxBackend

    data = _onnx_with_config(_config_dict(), ["batch", 1, 48, 48])
    onnx = pytest.importorskip("onnx")
    proto = onnx.load_from_string(data)
    proto.metadata_props[0].value = "[1, 2]"
    with pytest.raises(ModelError, match="must be a JSON object, found a list"):
        OnnxBackend(proto.SerializeToString(), source="list.onnx")


# -- missing extras: the install line, not a traceback ---------------------------------------------


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from emolens.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_serve_without_the_serve_extra(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    code, err = _cli(["serve"], capsys)
    assert code == 1 and "pip install 'emolens[serve]'" in err and "emolens serve" in err


def test_export_without_the_onnx_extra(small_file, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, err = _cli(["export", "--model", str(small_file), "-o", str(tmp_path / "m.onnx")], capsys)
    assert code == 1 and "pip install 'emolens[onnx]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_backend_onnx_without_the_onnx_extra(small_file, tmp_path, monkeypatch, capsys) -> None:
    from PIL import Image

    photo = tmp_path / "face.png"
    Image.new("L", (64, 64), 128).save(photo)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, err = _cli(["predict", str(photo), "--model", str(small_file), "--backend", "onnx", "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "pip install 'emolens[onnx]'" in err and "--backend onnx" in err


def test_an_onnx_model_without_onnxruntime(tmp_path, monkeypatch) -> None:
    from emolens.runtime import create_backend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"pip install 'emolens\[onnx\]'"):
        create_backend(tmp_path / "m.onnx")
