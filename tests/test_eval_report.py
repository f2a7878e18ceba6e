"""`evaluate`, `calibrate_model` and `EvaluationReport` on small hand-made datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from emolens.data import SPLITS, FaceDataset
from emolens.errors import DataError, ModelError
from emolens.evaluation import EvaluationReport, calibrate_model, evaluate, fit_temperature
from emolens.evaluation.report import REPORT_FILES
from emolens.inference import predict_logits
from emolens.labels import EMOTIONS
from emolens.models import ModelConfig, build_model, load_model, save_model
from emolens.paths import free_dir
from emolens.preprocessing import PreprocessConfig, normalize

# Grey level of a face of class k: all at least 130, above the level under which faces are
# brightened before the network sees them (`preprocessing.FACE_BRIGHT_LEVEL`), so means stay apart.
LEVELS = [130 + 20 * k for k in range(len(EMOTIONS))]


class MeanBrightnessModel(nn.Module):
    """Predicts the class whose grey level is nearest the face's mean brightness.

    Its answers are known in advance, and a mirror image has the same mean, so it is exactly
    flip-invariant.
    """

    def __init__(self, sharpness: float = 50.0) -> None:
        super().__init__()
        cfg = PreprocessConfig()
        centres = normalize(np.array(LEVELS, np.uint8)[:, None, None].repeat(cfg.image_size, 1).repeat(cfg.image_size, 2), cfg)
        self.centres = nn.Parameter(centres.mean(dim=(1, 2, 3)), requires_grad=False)  # (C,)
        self.sharpness = sharpness
        self.emolens_config = ModelConfig(arch="mean_brightness", name="brightness")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, C)
        return -self.sharpness * (x.mean(dim=(1, 2, 3))[:, None] - self.centres) ** 2


def _face(level: int, seed: int) -> np.ndarray:
    """A 48x48 face of mean ~level, with noise so that no two seeds share pixels."""
    noise = np.random.default_rng(seed).integers(-4, 5, size=(48, 48))
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def _dataset(rows: list[tuple[np.ndarray, int, str]]) -> FaceDataset:
    images, labels, splits = zip(*rows, strict=True)
    return FaceDataset(
        images=np.stack(images), labels=np.array(labels, np.int64), split=np.array([SPLITS.index(s) for s in splits], np.int8),
        names=np.array([f"face{i}" for i in range(len(rows))]), source="hand-made",
    )


@pytest.fixture(scope="module")
def dup_dataset() -> FaceDataset:
    """train: one face per class. val: classes 5 and 6. test: 4 exact copies of train faces
    (labelled right), 3 new faces labelled wrong (true 0, predicted 4, 5, 6), and a copy of a
    val face (right; a copy of val is not a copy of train)."""
    train = [(_face(LEVELS[k], k), k, "train") for k in range(7)]
    val = [(_face(LEVELS[5], 100), 5, "val"), (_face(LEVELS[6], 101), 6, "val")]
    test = [(train[k][0].copy(), k, "test") for k in range(4)]
    test += [(_face(LEVELS[k], 200 + k), 0, "test") for k in (4, 5, 6)]
    test += [(val[0][0].copy(), 5, "test")]
    return _dataset(train + val + test)


@pytest.fixture(scope="module")
def report(dup_dataset) -> EvaluationReport:
    return evaluate(MeanBrightnessModel(), dup_dataset, split="test")


def test_headline_metrics_and_dedup_subset(report):
    assert report.n_images == 8
    assert report.accuracy == pytest.approx(5 / 8)
    # Only the three wrong faces and the val copy are new to train: 1 right of 4. Macro-F1
    # averages all 7 classes (it used to average the 4 seen in the subset: (2/3) / 4).
    assert report.dedup == {"n_images": 4, "n_duplicates": 4, "accuracy": pytest.approx(0.25), "macro_f1": pytest.approx((2 / 3) / 7)}
    assert report.confusion[0] == [1, 0, 0, 0, 1, 1, 1]
    assert sum(map(sum, report.confusion)) == 8
    assert report.summary()["dedup_accuracy"] == pytest.approx(0.25)
    assert report.timing["images_per_s"] > 0 and report.timing["batch_size"] == 256
    assert report.model_name == "brightness" and report.model_path is None and report.tta == "none"


def test_no_dedup_without_train_split(dup_dataset):
    test_only = dup_dataset.subset(dup_dataset.split == SPLITS.index("test"))
    r = evaluate(MeanBrightnessModel(), test_only)
    assert r.dedup is None and r.accuracy == pytest.approx(5 / 8)
    assert "dedup_accuracy" not in r.summary()


def test_json_round_trip(report, tmp_path):
    path = report.to_json(tmp_path / "r.json")
    back = EvaluationReport.from_json(path)
    assert back == report
    assert back.classes == EMOTIONS


def test_markdown_and_dataframe(report):
    md = report.to_markdown()
    assert "| accuracy | 62.50% |" in md
    assert "| accuracy, images not in train (4 of 8) | 25.00% |" in md
    assert "| angry | " in md and "split **test**" in md and "test-time augmentation: **none**" in md
    df = report.to_df()
    assert list(df.index) == list(EMOTIONS)
    assert list(df.columns) == ["precision", "recall", "f1", "support"]
    assert df.loc["angry", "support"] == 4 and df.loc["angry", "recall"] == pytest.approx(0.25)


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_png_is_a_readable_image(report, tmp_path, normalize):
    path = report.plot_confusion(tmp_path / "cm.png", normalize=normalize)
    with Image.open(path) as img:
        assert img.format == "PNG"
        w, h = img.size
        assert 700 <= w <= 3000 and 600 <= h <= 3000
        assert np.asarray(img.convert("L")).std() > 10  # not a blank canvas


def test_save_writes_all_files_and_never_overwrites(report, tmp_path):
    first = report.save(tmp_path / "eval")
    assert first == tmp_path / "eval"
    assert sorted(p.name for p in first.iterdir()) == sorted(REPORT_FILES)
    assert all((first / name).stat().st_size > 0 for name in REPORT_FILES)
    before = (first / "report.json").read_bytes()
    second = report.save(tmp_path / "eval")
    assert second == tmp_path / "eval-2"
    assert (first / "report.json").read_bytes() == before
    with Image.open(second / "reliability.png") as img:
        assert img.size[0] >= 500 and img.size[1] >= 500
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        free_dir(tmp_path / "afile")


def test_flip_tta_of_flip_invariant_model_changes_nothing(dup_dataset):
    model = MeanBrightnessModel(sharpness=5.0)  # soft enough that NLL/ECE are not saturated
    test_images = dup_dataset.images[dup_dataset.split == SPLITS.index("test")]
    np.testing.assert_allclose(predict_logits(model, test_images, tta="flip"), predict_logits(model, test_images), rtol=1e-5, atol=1e-6)
    plain, flipped = evaluate(model, dup_dataset), evaluate(model, dup_dataset, tta="flip")
    assert flipped.tta == "flip"
    assert flipped.confusion == plain.confusion
    assert flipped.nll == pytest.approx(plain.nll, rel=1e-5) and flipped.ece == pytest.approx(plain.ece, abs=1e-6)


def _small_cnn(name: str) -> nn.Module:
    """A random simple_cnn on 24x24 centre crops: a 2 MB file instead of 19 MB, same code paths."""
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="simple_cnn", name=name, preprocess=PreprocessConfig(input_size=24))).eval()


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory):
    return save_model(_small_cnn("random"), tmp_path_factory.mktemp("model") / "m.safetensors")


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_tta_modes_run_on_a_saved_cnn(saved_cnn, tta):
    path = saved_cnn
    rng = np.random.default_rng(0)
    ds = FaceDataset(
        images=rng.integers(0, 256, (12, 48, 48), dtype=np.uint8), labels=np.arange(12) % 7, split=np.full(12, 2, np.int8),
        names=np.array([str(i) for i in range(12)]),
    )
    r = evaluate(path, ds, tta=tta, batch_size=5)
    assert r.tta == tta and r.n_images == 12 and r.model_path == str(path) and r.model_name == "random"
    assert 0 <= r.accuracy <= 1 and np.isfinite(r.nll) and sum(map(sum, r.confusion)) == 12


def test_labels_and_logits_per_face_are_what_evaluate_scores(saved_cnn):
    """`split_labels_and_logits` (for face-by-face comparisons, benchmarks/tta.py) gives the
    labels and logits behind `evaluate`'s figures, labels in the model's order."""
    from emolens.evaluation import split_labels_and_logits

    rng = np.random.default_rng(1)
    ds = FaceDataset(
        images=rng.integers(0, 256, (14, 48, 48), dtype=np.uint8), labels=np.arange(14) % 2, split=np.full(14, 2, np.int8),
        names=np.array([str(i) for i in range(14)]), classes=("sad", "happy"),
    )
    y, logits, labels = split_labels_and_logits(saved_cnn, ds, tta="flip", batch_size=5)
    assert labels == EMOTIONS and logits.shape == (14, len(EMOTIONS))
    assert list(y[:2]) == [EMOTIONS.index("sad"), EMOTIONS.index("happy")]
    assert (logits.argmax(1) == y).mean() == pytest.approx(evaluate(saved_cnn, ds, tta="flip").accuracy)


def test_dataset_classes_are_mapped_to_model_labels():
    # The dataset lists only two classes, in an order other than the model's.
    ds = FaceDataset(
        images=np.stack([_face(LEVELS[5], 1), _face(LEVELS[3], 2)]), labels=np.array([0, 1]), split=np.full(2, 2, np.int8),
        names=np.array(["a", "b"]), classes=("sad", "happy"),
    )
    r = evaluate(MeanBrightnessModel(), ds)
    assert r.accuracy == 1.0 and r.confusion[5][5] == 1 and r.confusion[3][3] == 1


def test_bad_inputs_raise_clear_errors(dup_dataset, tmp_path):
    no_val = dup_dataset.subset(dup_dataset.split != SPLITS.index("val"))
    with pytest.raises(DataError, match=r"no 'val' split.*splits present: train \(7\), test \(8\)"):
        evaluate(MeanBrightnessModel(), no_val, split="val")
    with pytest.raises(DataError, match="contempt"):
        evaluate(MeanBrightnessModel(), FaceDataset(
            images=np.zeros((1, 48, 48), np.uint8), labels=np.array([0]), split=np.array([2], np.int8), names=np.array(["x"]),
            classes=("contempt",)))
    with pytest.raises(ModelError, match="no such model file"):
        evaluate(tmp_path / "missing.safetensors", dup_dataset)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        evaluate(MeanBrightnessModel(), dup_dataset, tta="mirror")


def _overconfident_cnn() -> nn.Module:
    model = _small_cnn("overconfident")
    with torch.no_grad():
        model.head[-1].weight.mul_(200.0)  # random features, huge logits: wrong and sure of it
    return model.eval()


@pytest.mark.filterwarnings("ignore:fitted temperature:RuntimeWarning")  # a random model's best T is the search bound
def test_calibrate_model_fits_on_val_only_and_writes_a_new_file(tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    ds = FaceDataset(
        images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), labels=rng.integers(0, 7, n),
        split=np.repeat(np.array([0, 1, 2], np.int8), n // 3), names=np.array([str(i) for i in range(n)]),
    )
    model = _overconfident_cnn()
    src = save_model(model, tmp_path / "in.safetensors")
    src_bytes = src.read_bytes()

    res = calibrate_model(src, ds, tmp_path / "out" / "calibrated.safetensors")

    val_images, val_labels = ds.images[ds.split == 1], ds.labels[ds.split == 1]
    assert res.temperature == pytest.approx(fit_temperature(predict_logits(model, val_images), val_labels), rel=1e-4)
    assert res.temperature > 5 and res.temperature_before == 1.0 and res.n_images == 20
    assert res.ece_after < res.ece_before and res.nll_after < res.nll_before
    assert src.read_bytes() == src_bytes  # the input model is untouched

    loaded = load_model(res.path)
    assert loaded.emolens_config.temperature == pytest.approx(res.temperature)
    cal = loaded.emolens_config.metrics["calibration"]
    assert cal["split"] == "val" and cal["ece_before"] == pytest.approx(res.ece_before) and cal["ece_after"] == pytest.approx(res.ece_after)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], p)

    with pytest.raises(ModelError, match="already exists"):
        calibrate_model(src, ds, res.path)
    with pytest.raises(ModelError, match="already exists"):
        calibrate_model(src, ds, src)
    with pytest.raises(DataError, match="no 'val' split"):
        calibrate_model(src, ds.subset(ds.split != 1), tmp_path / "other.safetensors")


def test_calibrate_model_softens_an_overconfident_model_and_leaves_it_alone(tmp_path):
    # val: 20 faces the model gets 14 of right, at near-certain confidence -> T > 1.
    # test: all labelled wrong, which would push T far higher if it were (wrongly) used.
    val = [(_face(LEVELS[k % 7], k), k % 7 if k < 14 else (k + 1) % 7, "val") for k in range(20)]
    test = [(_face(LEVELS[k % 7], 50 + k), (k + 3) % 7, "test") for k in range(10)]
    ds = _dataset(val + test)
    model = MeanBrightnessModel(sharpness=200.0)
    res = calibrate_model(model, ds, tmp_path / "c.safetensors")
    val_logits = predict_logits(model, ds.images[:20])
    assert 1.5 < res.temperature < 100
    assert res.temperature == pytest.approx(fit_temperature(val_logits, ds.labels[:20]), rel=1e-4)
    assert res.ece_after < res.ece_before and res.nll_after < res.nll_before
    assert model.emolens_config.temperature == 1.0  # the caller's model keeps its config
    assert res.path.exists() and res.path.with_suffix(".json").exists()
