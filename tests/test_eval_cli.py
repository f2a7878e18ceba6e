"""`emolens evaluate` end to end on a tiny Kaggle-style folder and a small random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import emolens.evaluation
from emolens.cli import main
from emolens.evaluation.report import REPORT_FILES
from emolens.labels import EMOTIONS
from emolens.models import ModelConfig, build_model, load_model, save_model
from emolens.preprocessing import PreprocessConfig

PER_CLASS = 2  # faces per class and split


@pytest.fixture(scope="module")
def fer_folder(tmp_path_factory):
    """train/<class>/Training_*.png and test/<class>/{PublicTest,PrivateTest}_*.png, as the
    Kaggle download; the first PrivateTest angry face is a pixel copy of a Training one."""
    root = tmp_path_factory.mktemp("fer")
    rng = np.random.default_rng(0)
    first_train = None
    i = 0
    for cls in EMOTIONS:
        for folder, prefix in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
            (root / folder / cls).mkdir(parents=True, exist_ok=True)
            for _ in range(PER_CLASS):
                face = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                if prefix == "Training" and first_train is None:
                    first_train = face
                if prefix == "PrivateTest" and cls == "angry" and i % PER_CLASS == 0:
                    face = first_train
                Image.fromarray(face).save(root / folder / cls / f"{prefix}_{i}.png")
                i += 1
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    # 24x24 centre crops keep the file small (2 MB); a random model is all plumbing needs.
    model = build_model(ModelConfig(arch="simple_cnn", name="random-cnn", preprocess=PreprocessConfig(input_size=24)))
    return save_model(model, tmp_path_factory.mktemp("model") / "random.safetensors")


def test_evaluate_writes_report_folder(fer_folder, model_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    assert main(["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "macro-F1" in printed and str(out) in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and report["tta"] == "none" and report["model_name"] == "random-cnn"
    assert report["n_images"] == 7 * PER_CLASS
    assert report["dedup"]["n_duplicates"] == 1 and report["dedup"]["n_images"] == 7 * PER_CLASS - 1
    assert sum(r["support"] for r in report["per_class"]) == 7 * PER_CLASS

    # A second run never touches the first report; its options reach the Python API as given.
    seen = {}
    real = emolens.evaluation.evaluate

    def spy(model, dataset, **kwargs):
        seen.update(model=model, kwargs=kwargs)
        return real(model, dataset, **kwargs)

    monkeypatch.setattr(emolens.evaluation, "evaluate", spy)
    argv = ["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(out), "--split", "val", "--tta", "flip", "--batch-size", "5"]
    assert main(argv) == 0
    assert seen["model"] == model_file
    assert seen["kwargs"] == {"split": "val", "tta": "flip", "batch_size": 5, "device": None, "progress": True}
    err = capsys.readouterr().err
    assert f"writing to {out}-2" in err
    second = json.loads((tmp_path / "eval-2" / "report.json").read_text())
    assert second["split"] == "val" and second["tta"] == "flip"
    assert json.loads((out / "report.json").read_text()) == report


@pytest.mark.filterwarnings("ignore:fitted temperature:RuntimeWarning")  # a random model's best T is the search bound
def test_calibrate_writes_a_new_model_and_evaluates_it(fer_folder, model_file, tmp_path, capsys):
    src_bytes = model_file.read_bytes()
    out = tmp_path / "cal"
    assert main(["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(out), "--calibrate"]) == 0
    printed = capsys.readouterr().out
    assert "calibrated on val (14 images)" in printed
    new = out / "model-calibrated.safetensors"
    cfg = load_model(new).emolens_config
    cal = cfg.metrics["calibration"]
    assert cal["split"] == "val" and cal["n_images"] == 7 * PER_CLASS and cal["ece_after"] <= cal["ece_before"] + 1e-9
    assert json.loads((out / "report.json").read_text())["temperature"] == pytest.approx(cfg.temperature)
    assert model_file.read_bytes() == src_bytes

    # --calibrated-out never overwrites: pointing it at the input model is refused.
    rc = main(["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(tmp_path / "x"), "--calibrate", "--calibrated-out", str(model_file)])
    assert rc == 1
    assert "already exists" in capsys.readouterr().err


def test_missing_model_or_data_exit_1_with_a_message(fer_folder, model_file, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.safetensors"), "--data", str(fer_folder)]) == 1
    assert "nope.safetensors: no such model file" in capsys.readouterr().err
    assert main(["evaluate", str(model_file), "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "o")]) == 1
    assert "no-data: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_split_choices_exclude_train(fer_folder, model_file):
    from typer.testing import CliRunner

    from emolens.cli.app import app

    result = CliRunner().invoke(app, ["evaluate", str(model_file), "--data", str(fer_folder), "--split", "train"])
    assert result.exit_code == 2
    assert "'train'" in result.output


@pytest.mark.filterwarnings("ignore:fitted temperature:RuntimeWarning")
def test_calibrate_with_class_bias_records_the_offsets(fer_folder, model_file, tmp_path, capsys):
    out = tmp_path / "cb"
    argv = ["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(out), "--split", "val", "--calibrate", "--class-bias"]
    assert main(argv) == 0
    assert "class offsets fitted on val: angry" in capsys.readouterr().out
    cal = load_model(out / "model-calibrated.safetensors").emolens_config.metrics["calibration"]
    assert len(cal["class_bias"]) == 7 and cal["min_recall"] == 0.0
    assert cal["val_f1_after"] >= cal["val_f1_before"]  # zero offsets are a candidate, so the fit never does worse
    report = json.loads((out / "report.json").read_text())
    assert report["macro_f1"] == pytest.approx(cal["val_f1_after"], abs=1e-6)
    # --class-bias alone would change nothing on disk: refused with a message.
    assert main(["evaluate", str(model_file), "--data", str(fer_folder), "--out", str(tmp_path / "y"), "--class-bias"]) != 0
    assert "--class-bias needs --calibrate" in capsys.readouterr().err


def test_the_default_model_scored_on_fer2013_style_data_says_which_labels_it_learned(fer_folder, tmp_path, capsys):
    """The shipped default learned FER+'s labels; scored on the Kaggle layout, whose labels are
    FER-2013's, the report says so and what to run instead. FER-2013's own model gets no note."""
    assert main(["evaluate", "--data", str(fer_folder), "--out", str(tmp_path / "default")]) == 0
    out = capsys.readouterr().out
    assert "note: this model learned FER+'s labels" in out and "emolens evaluate fer2013 --data" in out and "--ferplus fer2013new.csv" in out, out
    assert main(["evaluate", "fer2013", "--data", str(fer_folder), "--out", str(tmp_path / "fer2013")]) == 0
    assert "note:" not in capsys.readouterr().out


def test_which_labels_note_only_where_the_labels_may_be_fer2013s():
    from pathlib import Path

    from emolens.cli.evaluate import _which_labels_note

    ferplus_model = {"test": {"accuracy": 0.6367}, "test_ferplus": {"accuracy": 0.8215}}
    assert _which_labels_note(ferplus_model, "zip", None) and _which_labels_note(ferplus_model, "fer2013-csv", None)
    assert _which_labels_note(ferplus_model, "ferplus-images", None) is None  # FER+'s own folders
    assert _which_labels_note(ferplus_model, "zip", Path("fer2013new.csv")) is None  # scored against FER+ already
    assert _which_labels_note({"test": {"accuracy": 0.7264}, "test_ferplus": {"accuracy": 0.70}}, "zip", None) is None  # a FER-2013 model
    assert _which_labels_note({"val_acc": 0.8}, "folder", None) is None  # nothing recorded on test
