"""Ultralytics classification export, and `emolens train --backend ultralytics`."""

from __future__ import annotations

import csv
import sys
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

import emolens.training
from emolens.cli import main
from emolens.data import load_dataset
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError, DataError
from emolens.export import to_ultralytics_cls
from emolens.labels import EMOTIONS
from emolens.training import load_config
from emolens.training.ultralytics_backend import model_yaml_for, train_ultralytics


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_dataset(n_per_class=4, seed=3)


def test_export_writes_the_layout_with_exact_pixels(faces, tmp_path):
    out = tmp_path / "yolo"
    counts = to_ultralytics_cls(faces, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "test", "train", "val"]
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(EMOTIONS)  # every class in every split
        n = int((faces.split == ("train", "val", "test").index(split)).sum())
        assert sum(counts[split].values()) == n == len(list((out / split).glob("*/*.png")))
    with open(out / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(faces)
    for row in rows[:10]:  # lossless: the PNG holds the dataset's pixels, in the class folder of its label
        i = int(row["file"].split("/")[-1].split("_")[0])
        assert np.array_equal(np.asarray(Image.open(out / row["file"])), faces.images[i])
        assert row["label"] == EMOTIONS[faces.labels[i]] and row["source_name"] == faces.names[i]


def test_export_never_writes_into_a_non_empty_folder(faces, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not an empty folder"):
        to_ultralytics_cls(faces, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_export_needs_train_and_val(faces, tmp_path):
    with pytest.raises(DataError, match="no 'val' split"):
        to_ultralytics_cls(faces.subset("train"), tmp_path / "x")


def test_export_dataset_cli_reads_any_layout(faces, tmp_path, capsys):
    src = tmp_path / "folder"
    for i in range(len(faces)):  # a plain folder-per-class dataset, as users have
        d = src / EMOTIONS[faces.labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(faces.images[i]).save(d / f"img{i}.png")
    out = tmp_path / "out"
    assert main(["export-dataset", "--format", "ultralytics-cls", str(src), str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    ds = load_dataset(src, progress=False)
    assert len(list(out.glob("*/*/*.png"))) == len(ds)
    assert main(["export-dataset", str(src), str(out)]) == 1  # the second time: out is not empty


def test_ultralytics_backend_without_the_extra_explains_itself(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    cfg = load_config(overrides=[f"run.out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"pip install 'emolens\[ultralytics\]'.*torchvision"):
        train_ultralytics(cfg)
    assert main(["train", "--backend", "ultralytics", "--data", "synthetic", "--set", f"run.out_dir={tmp_path}"]) == 1
    assert "emolens[ultralytics]" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # it failed before reading data or creating a run folder


def test_yaml_only_no_downloaded_weights():
    assert model_yaml_for("resnet_fer_small") == "yolov8n-cls.yaml"
    assert model_yaml_for("yolov8s-cls.yaml") == "yolov8s-cls.yaml"
    with pytest.raises(ConfigError, match="yaml only"):
        model_yaml_for("yolov8n-cls.pt")


def test_backend_option_keeps_the_default_trainer(monkeypatch, tmp_path):
    seen = {}

    class Result:
        metrics: ClassVar[dict] = {}

    def fake_train(cfg, resume=None):
        seen.update(arch=cfg.model.arch, epochs=cfg.schedule.epochs, resume=resume)
        return Result()

    monkeypatch.setattr(emolens.training, "train", fake_train)
    assert main(["train", "--model", "simple_cnn", "--epochs", "2", "--backend", "emolens"]) == 0
    assert seen == {"arch": "simple_cnn", "epochs": 2, "resume": None}
    seen.clear()
    assert main(["train", "--model", "vgg_fer_small", "--epochs", "3"]) == 0  # no --backend: emolens
    assert seen == {"arch": "vgg_fer_small", "epochs": 3, "resume": None}
    assert main(["train", "--backend", "ultralytics", "--resume", str(tmp_path)]) == 1


def test_backend_ultralytics_hands_the_resolved_config_to_train_ultralytics(monkeypatch, capsys):
    import emolens.training.ultralytics_backend as ub

    seen = {}

    class Result:
        def summary(self):
            return {"ok": True}

    def fake(cfg):
        seen.update(arch=cfg.model.arch, epochs=cfg.schedule.epochs, lr=cfg.optim.lr)
        return Result()

    monkeypatch.setattr(ub, "train_ultralytics", fake)
    assert main(["train", "--backend", "ultralytics", "--model", "yolov8s-cls.yaml", "--epochs", "2", "--set", "optim.lr=0.01"]) == 0
    assert seen == {"arch": "yolov8s-cls.yaml", "epochs": 2, "lr": 0.01}
    assert '"ok": true' in capsys.readouterr().out


class _FakeYOLO:
    """Ultralytics' YOLO interface, enough for the backend: train() on the exported folder,
    trainer.best, names, predict() -> results with probs.data. It "learns" the exported
    images by their pixels, so a correct export, class mapping and report give accuracy 1."""

    instances: ClassVar[list] = []

    def __init__(self, model, task=None):
        import types

        self.model, self.task, self.calls = str(model), task, []
        self.trainer = types.SimpleNamespace(best=None)
        self.names, self.table = {}, {}
        if self.model.endswith(".pt"):  # trained weights: names are known on load, as in Ultralytics
            from pathlib import Path

            self.table = dict(reversed(line.split(" ")) for line in Path(self.model).read_text().splitlines())
            self.names = dict(enumerate(reversed(sorted(set(self.table.values())))))
        _FakeYOLO.instances.append(self)

    def train(self, **kw):
        from pathlib import Path

        self.calls.append(kw)
        data = Path(kw["data"])
        classes = sorted(p.name for p in (data / "train").iterdir())
        self.names = dict(enumerate(reversed(classes)))  # not emolens' order: the backend must map
        best = Path(kw["project"]) / kw["name"] / "weights" / "best.pt"
        best.parent.mkdir(parents=True)
        lines = [f"{p.parent.name} {np.asarray(Image.open(p)).tobytes().hex()}" for p in data.glob("*/*/*.png")]
        best.write_text("\n".join(lines))
        self.trainer.best = str(best)

    def predict(self, source, imgsz, batch, verbose):
        import types

        import torch

        index = {v: k for k, v in self.names.items()}
        out = []
        for im in source:
            assert im.ndim == 3 and im.shape[2] == 3 and imgsz == 64
            p = torch.zeros(len(self.names))
            p[index[self.table[im[:, :, 0].tobytes().hex()]]] = 0.9
            out.append(types.SimpleNamespace(probs=types.SimpleNamespace(data=p + 0.1 / len(p))))
        return out


def test_ultralytics_backend_trains_from_yaml_and_reports(monkeypatch, tmp_path):
    import types

    _FakeYOLO.instances.clear()
    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=_FakeYOLO))
    cfg = load_config(overrides=["schedule.epochs=2", f"run.out_dir={tmp_path}", "run.name=yolo", "data.batch_size=16", "run.progress=false"])
    result = train_ultralytics(cfg, dataset=make_synthetic_dataset(n_per_class=4, seed=5))
    built, trained = _FakeYOLO.instances[:2]
    assert built.model == "yolov8n-cls.yaml" and built.task == "classify"  # from the yaml: nothing downloaded
    kw = built.calls[0]
    assert kw["pretrained"] is False and kw["epochs"] == 2 and kw["imgsz"] == 64 and kw["batch"] == 16 and kw["seed"] == 0
    assert trained.model == str(result.weights_path) and result.weights_path.parent.parent.parent == result.run_dir
    assert result.report.split == "test" and result.report.accuracy == 1.0 and result.report.arch == "ultralytics:yolov8n-cls.yaml"
    assert (result.report_dir / "report.json").is_file() and (result.run_dir / "config.yaml").is_file()
    assert sorted(p.name for p in (result.run_dir / "dataset").iterdir()) == ["manifest.csv", "test", "train", "val"]


def _ultralytics_or_reason() -> str | None:
    from emolens.training.ultralytics_backend import import_ultralytics

    try:
        import_ultralytics()  # sets YOLO_OFFLINE / YOLO_AUTOINSTALL first, as the backend does
    except ConfigError as exc:
        why = str(exc).split(". Importing ultralytics failed: ")[-1]
        return f"ultralytics does not import here ({why}); install the ultralytics extra, with a torchvision built for this torch"
    return None


@pytest.mark.skipif(_ultralytics_or_reason() is not None, reason=_ultralytics_or_reason() or "")
@pytest.mark.filterwarnings("ignore:fitted temperature")  # one epoch on 14 faces leaves the probabilities near uniform
def test_real_yolov8_cls_trains_from_yaml_through_the_cli(tmp_path, monkeypatch, one_torch_thread):
    """`emolens train --backend ultralytics` with real Ultralytics: yaml only, 1 epoch at 32 px, offline."""
    from emolens.evaluation import EvaluationReport
    from emolens.evaluation.report import REPORT_FILES

    src = tmp_path / "faces"  # a dataset on disk in a layout emolens reads: split/class folders of PNGs
    to_ultralytics_cls(make_synthetic_dataset(n_per_class=4, seed=1), src)  # 14 train, 7 val, 7 test
    (src / "manifest.csv").unlink()
    monkeypatch.chdir(tmp_path)  # run.out_dir relative, as users give it: everything must land under it
    args = ["train", "--backend", "ultralytics", "--data", str(src), "--model", "yolov8n-cls.yaml", "--epochs", "1", "--name", "yolo"]
    sets = ["model.preprocess.input_size=32", "data.batch_size=8", "run.progress=false", "run.plots=false", "run.out_dir=runs"]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0

    run = tmp_path / "runs" / "yolo"
    assert sorted(p.name for p in (run / "test-report").iterdir()) == sorted(REPORT_FILES)  # what `emolens evaluate` writes
    report = EvaluationReport.from_json(run / "test-report" / "report.json")
    assert report.split == "test" and report.n_images == len(list((src / "test").glob("*/*.png"))) == 7
    assert report.arch == "ultralytics:yolov8n-cls.yaml" and report.classes == EMOTIONS and 0 <= report.accuracy <= 1
    assert sum(map(sum, report.confusion)) == 7 and report.temperature > 0
    args_yaml = (run / "train" / "args.yaml").read_text()
    assert "model: yolov8n-cls.yaml" in args_yaml and "pretrained: false" in args_yaml and "imgsz: 32" in args_yaml
    weights = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.pt"))  # none under runs/classify/
    assert weights == ["runs/yolo/train/weights/best.pt", "runs/yolo/train/weights/last.pt"]  # written by this run; nothing fetched
    assert (run / "config.yaml").is_file()
