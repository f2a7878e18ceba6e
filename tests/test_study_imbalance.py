"""`emolens study imbalance`: one architecture, every strategy, the same budget and seed, one table."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from typing import ClassVar

import numpy as np
import pytest
import yaml

import emolens.studies
import emolens.training
from emolens.cli import main
from emolens.data.splits import training_rows
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError, DataError
from emolens.evaluation import EvaluationReport
from emolens.studies import STRATEGIES, run_imbalance_study
from emolens.studies.resampling import RESAMPLERS, resample_arrays, resample_faces
from emolens.training import train, trainer

HAS_IMBLEARN = importlib.util.find_spec("imblearn") is not None
needs_imblearn = pytest.mark.skipif(not HAS_IMBLEARN, reason="SMOTE needs the imbalance extra: pip install 'emolens[imbalance]'")
# Without the extra the study still covers the trainer's strategies.
RUNNABLE = [s for s in STRATEGIES if HAS_IMBLEARN or s not in RESAMPLERS]

# One step leaves the network untrained, so the temperature search ends at its bound: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:fitted temperature")

# A 24 px input keeps simple_cnn's dense layer small; one step per epoch is all plumbing needs.
TINY = ["model.preprocess.input_size=24", "schedule.max_steps_per_epoch=1", "data.batch_size=8", "run.progress=false", "run.plots=false"]


def separable(ds):
    """`ds` with each face its class's fixed pattern plus noise: pixel neighbours share labels, so ENN keeps them."""
    rng = np.random.default_rng(0)
    patterns = rng.integers(40, 216, (len(ds.classes), ds.image_size, ds.image_size))
    noise = rng.normal(0, 10, ds.images.shape)
    return replace(ds, images=np.clip(patterns[ds.labels] + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    ds = separable(make_synthetic_dataset(n_per_class=6, seed=2))
    return run_imbalance_study(ds, model="simple_cnn", budget_epochs=1, strategies=RUNNABLE, overrides=TINY, out=tmp_path_factory.mktemp("s") / "study", seed=7)


def test_every_strategy_trains_on_the_same_budget(study):
    assert [r.strategy for r in study.results] == RUNNABLE
    configs = {}
    for r in study.results:
        cfg = yaml.safe_load((r.run_dir / "config.yaml").read_text())
        # SMOTE's rows are made before training; its run then trains plainly on them.
        assert cfg["imbalance"]["strategy"] == ("none" if r.strategy in RESAMPLERS else r.strategy)
        assert r.epochs_run == 1 and len(r.history) == 1
        cfg["imbalance"].pop("strategy")
        cfg["run"].pop("name")
        configs[r.strategy] = cfg
    first = configs["none"]
    assert all(c == first for c in configs.values())  # nothing but the strategy differs
    assert first["run"]["seed"] == 7 and first["schedule"]["early_stop_patience"] == 0 and first["schedule"]["epochs"] == 1


def test_table_rows_come_from_the_test_reports(study):
    out = study.out_dir
    rows = json.loads((out / "study.json").read_text())["rows"]
    assert [r["strategy"] for r in rows] == RUNNABLE
    for row, res in zip(rows, study.results, strict=True):
        report = EvaluationReport.from_json(res.run_dir / "test-report" / "report.json")
        assert report.split == "test"
        assert row["test_accuracy"] == report.accuracy and row["macro_f1"] == report.macro_f1
        disgust = next(c for c in report.per_class if c["class"] == "disgust")
        assert row["disgust_recall"] == disgust["recall"]
        assert row["val_accuracy"] == res.metrics["val_acc"] and row["epochs"] == 1 and row["seconds"] > 0
    md = (out / "study.md").read_text()
    assert "1 epoch, at most 1 step of 8 faces per epoch, seed 7, early stopping off" in md
    assert "| undersample |" in md and "disgust recall" in md
    header = (out / "study.csv").read_text().splitlines()[0]
    assert header.startswith("strategy,test_accuracy,macro_f1,disgust_recall")


def test_study_refuses_settings_it_owns(tmp_path):
    ds = make_synthetic_dataset(n_per_class=3)
    with pytest.raises(ConfigError, match=r"sets imbalance\.strategy itself"):
        run_imbalance_study(ds, overrides=["imbalance.strategy=focal"], out=tmp_path / "a")
    with pytest.raises(ConfigError, match="Did you mean 'oversample'"):
        run_imbalance_study(ds, strategies=["oversampling"], out=tmp_path / "b")
    with pytest.raises(ConfigError, match=r"sets schedule\.early_stop_patience itself \(use --patience\)"):
        run_imbalance_study(ds, overrides=["schedule.early_stop_patience=3"], out=tmp_path / "c")
    assert not any(tmp_path.iterdir())  # nothing is written before the options are checked


def test_cli_hands_arguments_to_the_study(monkeypatch, tmp_path, capsys):
    seen = {}

    class Fake:
        files: ClassVar[dict] = {"md": tmp_path / "study.md"}

        def to_markdown(self):
            return "STUDY TABLE"

    def fake(data, **kwargs):
        seen.update(data=data, **kwargs)
        return Fake()

    monkeypatch.setattr(emolens.studies, "run_imbalance_study", fake)
    argv = ["study", "imbalance", "--data", "archive.zip", "--model", "vgg_fer_small", "--budget-epochs", "4",
            "--strategies", "none,focal", "--set", "data.train_fraction=0.5", "--out", str(tmp_path / "st"), "--seed", "1"]
    assert main(argv) == 0
    assert seen == {
        "data": "archive.zip", "model": "vgg_fer_small", "budget_epochs": 4, "strategies": ["none", "focal"], "config": None,
        "overrides": ["data.train_fraction=0.5"], "out": tmp_path / "st", "seed": 1, "patience": 0, "resume": False,
    }
    assert "STUDY TABLE" in capsys.readouterr().out


# -- SMOTE / SMOTE-ENN on pixels, and a study that resumes ----------------------------------------



@pytest.fixture(scope="module")
def skewed():
    """A synthetic set whose train split keeps 2 disgust faces of 6: the imbalance SMOTE exists for."""
    ds = make_synthetic_dataset(n_per_class=6, seed=3)
    disgust = np.flatnonzero((ds.split == 0) & (ds.labels == ds.classes.index("disgust")))
    return ds.subset(np.setdiff1d(np.arange(len(ds)), disgust[2:]))


@needs_imblearn
def test_smote_makes_faces_between_faces_of_their_class(skewed):
    rows = training_rows(skewed, val_fraction=0.1, seed=0)
    out = resample_faces(skewed, rows, "smote", seed=0)
    train = out.subset("train")
    counts = np.bincount(skewed.labels[rows["train"]])
    assert np.bincount(train.labels).tolist() == [counts.max()] * len(counts)  # every class raised to the largest
    n = len(rows["train"])
    assert np.array_equal(train.images[:n], skewed.images[rows["train"]])  # the real faces first, untouched
    for face, label in zip(train.images[n:], train.labels[n:], strict=True):
        own = skewed.images[rows["train"]][skewed.labels[rows["train"]] == label]
        # A made face is a blend of two faces of its class: every pixel within their range.
        assert (face >= own.min(0)).all() and (face <= own.max(0)).all()
    for split in ("val", "test"):  # never resampled
        assert np.array_equal(out.subset(split).images, skewed.images[rows[split]])
    assert out.soft_labels is None and "resampled by smote" in out.source
    again = resample_faces(skewed, rows, "smote", seed=0)
    assert np.array_equal(again.images, out.images)  # seeded: a resumed study trains on the same faces
    # These synthetic faces are not separable pixel by pixel: ENN's neighbours outvote every row.
    with pytest.raises(DataError, match=r"smote_enn: kept 0 of the 26 training rows"):
        resample_faces(skewed, rows, "smote_enn", seed=0)


@needs_imblearn
def test_smote_enn_cleans_the_class_borders():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    y = np.repeat([0, 1, 2], [40, 8, 40])
    X = centres[y] + rng.normal(0, 1.0, (len(y), 2))
    X_smote, y_smote = resample_arrays(X, y, "smote", seed=0)
    X_enn, y_enn = resample_arrays(X, y, "smote_enn", seed=0)
    assert np.bincount(y_smote).tolist() == [40, 40, 40]
    assert set(y_enn) == {0, 1, 2} and len(y_enn) < len(y_smote)  # every class kept, the overlap removed
    # What ENN removed is where the classes overlap: the kept rows are nearer their own centre.
    def spread(X_, y_):
        return np.mean(np.linalg.norm(X_ - centres[y_], axis=1))
    assert spread(X_enn, y_enn) < spread(X_smote, y_smote)


@needs_imblearn
def test_missing_extra_fails_before_anything_is_written(skewed, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imblearn.over_sampling", None)  # what an install without the extra sees
    with pytest.raises(ConfigError, match=r"smote strategy .*pip install 'emolens\[imbalance\]'"):
        run_imbalance_study(skewed, strategies=["none", "smote"], overrides=TINY, out=tmp_path / "s")
    assert not any(tmp_path.iterdir())


class Killed(Exception):
    """Stands in for a kill right after an epoch is committed."""


@needs_imblearn
def test_a_killed_study_resumes_where_it_stopped(skewed, tmp_path, monkeypatch):
    kw = {"model": "simple_cnn", "budget_epochs": 2, "strategies": ["none", "smote"], "overrides": TINY, "seed": 5}
    whole = run_imbalance_study(skewed, **kw, out=tmp_path / "whole")

    real = trainer.write_history
    def kill_after_smote_epoch_1(run_dir, history):
        real(run_dir, history)  # after checkpoints/last: epoch 1 is on disk
        if run_dir.name == "smote":
            raise Killed
    monkeypatch.setattr(trainer, "write_history", kill_after_smote_epoch_1)
    with pytest.raises(Killed):
        run_imbalance_study(skewed, **kw, out=tmp_path / "study")
    monkeypatch.setattr(trainer, "write_history", real)
    study_dir = tmp_path / "study"
    assert [r["strategy"] for r in json.loads((study_dir / "study.json").read_text())["rows"]] == ["none"]
    none_row = (study_dir / "runs" / "none" / "study-row.json").read_text()

    calls = []
    def spy(cfg, *, resume=None, dataset=None):
        calls.append((cfg.run.name, resume))
        return train(cfg, resume=resume, dataset=dataset)
    monkeypatch.setattr(emolens.training, "train", spy)
    with pytest.raises(ConfigError, match=r"cannot resume with changed settings \(seed, config run\.seed\)"):
        run_imbalance_study(skewed, **{**kw, "seed": 6}, out=study_dir, resume=True)
    resumed = run_imbalance_study(skewed, **kw, out=study_dir, resume=True)
    assert calls == [("smote", study_dir / "runs" / "smote")]  # none skipped, smote resumed from its checkpoint
    assert (study_dir / "runs" / "none" / "study-row.json").read_text() == none_row
    assert not (study_dir.parent / "study-2").exists()  # resumed in place
    got, want = resumed.results[1], whole.results[1]
    assert got.epochs_run == 2 and got.cpu_seconds is None  # part of its CPU time went with the killed process
    drop = ("seconds", "images_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in got.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in want.history
    ]  # the same training as an uninterrupted study
    assert got.report.accuracy == want.report.accuracy and got.report.confusion == want.report.confusion
    assert [r["strategy"] for r in json.loads((study_dir / "study.json").read_text())["rows"]] == ["none", "smote"]


def test_resume_needs_a_study_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"nothing to resume, no study-plan\.json"):
        run_imbalance_study("no-such.zip", out=tmp_path, resume=True)


@needs_imblearn
def test_patience_stops_each_strategy_at_its_plateau(skewed, tmp_path):
    # lr 1e-9: the network cannot improve, so val_f1 is flat and each run stops after 1 + patience epochs.
    study = run_imbalance_study(skewed, model="simple_cnn", budget_epochs=6, patience=2, strategies=["none", "smote"],
                                overrides=[*TINY, "optim.lr=1e-9", "schedule.monitor=val_f1"], out=tmp_path / "p")
    for r in study.results:
        assert r.stopped_early and r.epochs_run == 3 and r.best_epoch == 1
        curve = r.plateau()
        assert len(curve["val_f1_curve"]) == 3 and curve["val_f1_after_best"] <= curve["best_val_f1"]
    assert "| none | 1 | 3 | True |" in study.to_markdown()  # the plateau table
    assert "at most 6 epochs" in study.to_markdown() and "early stopping after 2 epochs without a better val_f1" in study.to_markdown()
