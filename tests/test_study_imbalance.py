"""`emolens study imbalance`: one architecture, every strategy, the same budget and seed, one table."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import yaml

import emolens.studies
from emolens.cli import main
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError
from emolens.evaluation import EvaluationReport
from emolens.studies import STRATEGIES, run_imbalance_study
from emolens.studies.resampling import RESAMPLERS

# One step leaves the network untrained, so the temperature search ends at its bound: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:fitted temperature")

# A 24 px input keeps simple_cnn's dense layer small; one step per epoch is all plumbing needs.
TINY = ["model.preprocess.input_size=24", "schedule.max_steps_per_epoch=1", "data.batch_size=8", "run.progress=false", "run.plots=false"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    ds = make_synthetic_dataset(n_per_class=6, seed=2)
    return run_imbalance_study(ds, model="simple_cnn", budget_epochs=1, overrides=TINY, out=tmp_path_factory.mktemp("s") / "study", seed=7)


def test_every_strategy_trains_on_the_same_budget(study):
    assert [r.strategy for r in study.results] == list(STRATEGIES)
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
    assert [r["strategy"] for r in rows] == list(STRATEGIES)
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
