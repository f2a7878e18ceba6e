"""Classic baselines: numpy predictions equal scikit-learn's, pickle-free files round-trip exactly,
the loader refuses anything else, and the run writes the same report as `emolens evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import emolens.baselines
from emolens.baselines import BaselineModel, evaluate_baseline, load_baseline, parse_param_overrides, run_baselines
from emolens.baselines.classifiers import LinearSvm, Mlp, RandomForest, RbfSvm, expand_logits
from emolens.baselines.features import HogFeatures, PcaFeatures, normalized_pixels
from emolens.cli import main
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError, ModelError
from emolens.evaluation import EvaluationReport
from emolens.evaluation.report import REPORT_FILES
from emolens.paths import free_dir
from emolens.preprocessing import PreprocessConfig

SMALL = {  # keeps every fit well under a second
    "pca": {"n_components": 12},
    "rbf_svm": {"n_components": 40},
    "random_forest": {"n_estimators": 8},
    "mlp": {"hidden": [32], "max_iter": 30},
}


@pytest.fixture(scope="module")
def blobs():
    """Seven separable-but-noisy clusters in 20 dimensions: (z_train, y_train, z_test)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2, (7, 20))
    y = np.repeat(np.arange(7), 20)
    z = (centres[y] + rng.normal(0, 1.5, (len(y), 20))).astype(np.float32)
    zt = (centres[np.tile(np.arange(7), 5)] + rng.normal(0, 1.5, (35, 20))).astype(np.float32)
    return z, y, zt


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_dataset(n_per_class=12, seed=1)


@pytest.fixture(scope="module")
def comparison(faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines") / "cmp"
    return run_baselines(
        faces, features=["hog", "pca"], classifiers=["linear_svm", "rbf_svm", "random_forest", "mlp"], params=SMALL, out=out, seed=0
    )


# -- numpy re-implementations against scikit-learn ---------------------------------------------


def test_linear_svm_matches_sklearn(blobs):
    from sklearn.svm import LinearSVC

    z, y, zt = blobs
    ours = LinearSvm({"C": 0.1}).fit(z, y, 7, seed=0)
    ref = LinearSVC(C=0.1, max_iter=2000, dual="auto", random_state=0).fit(z, y)
    np.testing.assert_allclose(ours.logits(zt), ref.decision_function(zt), rtol=1e-5, atol=1e-5)


def test_rbf_svm_matches_sklearn_nystroem_pipeline(blobs):
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    z, y, zt = blobs
    ours = RbfSvm({"n_components": 50, "C": 0.5}).fit(z, y, 7, seed=3)
    ref = make_pipeline(Nystroem(gamma=1 / 20, n_components=50, random_state=3), LinearSVC(C=0.5, max_iter=2000, dual="auto", random_state=3))
    ref.fit(z, y)
    np.testing.assert_allclose(ours.logits(zt), ref.decision_function(zt), rtol=1e-4, atol=1e-4)


def test_random_forest_walks_trees_like_sklearn(blobs):
    from sklearn.ensemble import RandomForestClassifier

    z, y, zt = blobs
    ref = RandomForestClassifier(n_estimators=7, min_samples_leaf=2, random_state=0).fit(z, y)
    ours = RandomForest().from_sklearn(ref, 7)
    np.testing.assert_allclose(ours.proba(zt), ref.predict_proba(zt), atol=1e-6)
    assert (ours.logits(zt).argmax(1) == ref.predict(zt)).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_forward_matches_sklearn(blobs):
    from sklearn.neural_network import MLPClassifier

    z, y, zt = blobs
    ref = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=50, random_state=0).fit(z, y)
    ours = Mlp({"hidden": (16, 8)}).from_sklearn(ref, 7)
    logits = ours.logits(zt).astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), ref.predict_proba(zt), atol=1e-5)


def test_classes_absent_from_train_get_near_zero_probability(blobs):
    z, y, zt = blobs
    keep = y != 1  # no "disgust" in training
    clf = LinearSvm().fit(z[keep], y[keep], 7)
    logits = clf.logits(zt)
    assert logits.shape == (len(zt), 7) and (logits.argmax(1) != 1).all()
    assert np.isfinite(logits).all()
    np.testing.assert_array_equal(expand_logits(np.ones((2, 7)), np.arange(7), 7), np.ones((2, 7), np.float32))


def test_pca_transform_equals_sklearn_whitened_pca(faces):
    from sklearn.decomposition import PCA

    x = normalized_pixels(faces.images, PreprocessConfig())
    ours = PcaFeatures({"n_components": 10}).fit(x, seed=0)
    ref = PCA(n_components=10, whiten=True, svd_solver="randomized", random_state=0).fit(x.reshape(len(x), -1))
    np.testing.assert_allclose(ours.transform(x[:5]), ref.transform(x[:5].reshape(5, -1)), rtol=1e-4, atol=1e-4)


def test_hog_uses_the_network_preprocessing(faces):
    cfg = PreprocessConfig()
    x = normalized_pixels(faces.images[:3], cfg)
    assert x.shape == (3, cfg.input_size, cfg.input_size) and x.dtype == np.float32
    d = HogFeatures().transform(x)
    assert d.shape == (3, 5 * 5 * 2 * 2 * 9)  # 6x6 cells of 8 px -> 5x5 blocks of 2x2 cells, 9 bins
    with pytest.raises(ConfigError, match="fewer than cells_per_block"):
        HogFeatures({"pixels_per_cell": 32}).transform(x)


# -- the run: reports, files, round trip ---------------------------------------------------------


def test_run_writes_models_reports_and_table(comparison, faces):
    out = comparison.out_dir
    assert {p.name for p in out.iterdir()} >= {"baselines.md", "baselines.csv", "baselines.json", "hog_linear_svm", "pca_mlp"}
    rows = json.loads((out / "baselines.json").read_text())["rows"]
    assert [r["name"] for r in rows] == [f"{f}+{c}" for f in ("hog", "pca") for c in ("linear_svm", "rbf_svm", "random_forest", "mlp")]
    n_test = int((faces.split == 2).sum())
    for run in comparison.runs:
        assert set(REPORT_FILES) <= {p.name for p in run.report_dir.iterdir()}
        saved = EvaluationReport.from_json(run.report_dir / "report.json")
        assert saved.n_images == n_test and saved.split == "test" and saved.model_path == str(run.model_path.resolve())
        assert 0 <= saved.accuracy <= 1 and saved.temperature > 0 and sum(map(sum, saved.confusion)) == n_test
    # The synthetic expressions are easy for HOG: the linear SVM must be far above chance (1/7).
    assert comparison.runs[0].report.accuracy > 0.5
    md = (out / "baselines.md").read_text()
    assert "| hog+linear_svm |" in md and "disgust recall" in md and "fit (s)" in md


def test_saved_models_reload_to_identical_predictions(comparison, faces):
    test = faces.images[faces.split == 2]
    for run in comparison.runs:
        loaded = load_baseline(run.model_path)
        assert loaded.arch == run.model.arch and loaded.temperature == run.model.temperature
        np.testing.assert_array_equal(loaded.predict_logits(test), run.model.predict_logits(test))
        np.testing.assert_array_equal(loaded.predict(test), run.model.predict(test))
        assert json.loads(run.model_path.with_suffix(".json").read_text())["classifier"]["name"] == run.model.classifier.name


def test_evaluate_baseline_reproduces_the_run_report(comparison, faces):
    run = comparison.runs[2]
    report = evaluate_baseline(run.model_path, faces, split="test")
    assert report.accuracy == run.report.accuracy and report.macro_f1 == run.report.macro_f1 and report.arch == "hog+random_forest"


def test_save_never_overwrites(comparison):
    run = comparison.runs[0]
    with pytest.raises(ModelError, match="never overwritten"):
        run.model.save(run.model_path)


def test_non_empty_out_dir_is_kept(tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "mine.txt").write_text("keep me")
    assert free_dir(tmp_path / "cmp") == tmp_path / "cmp-2"
    assert (tmp_path / "cmp" / "mine.txt").read_text() == "keep me"


# -- the loader refuses anything else -----------------------------------------------------------


def test_loader_refuses_pickles_and_foreign_files(tmp_path, comparison):
    for name in ("model.pkl", "model.joblib", "model.npz"):
        (tmp_path / name).write_bytes(b"\x80\x04not really")
        with pytest.raises(ModelError, match="refused"):
            load_baseline(tmp_path / name)
    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelError, match="no emolens baseline description"):
        load_baseline(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_baseline(tmp_path / "junk.safetensors")


def _rewrite(src, dst, edit_arrays=None, edit_meta=None):
    from safetensors import safe_open

    with safe_open(str(src), framework="numpy") as f:
        meta = dict(f.metadata())
    arrays = load_file(str(src))
    if edit_arrays:
        edit_arrays(arrays)
    cfg = json.loads(meta["emolens_baseline"])
    if edit_meta:
        edit_meta(cfg)
    save_file(arrays, str(dst), metadata={"emolens_baseline": json.dumps(cfg)})
    return dst


def test_loader_checks_every_array(tmp_path, comparison):
    forest = next(r for r in comparison.runs if r.model.name == "hog+random_forest").model_path
    svm = comparison.runs[0].model_path

    def cycle(a):  # a child pointing back at the root would loop forever
        left = a["classifier.children_left"]
        left[np.flatnonzero(left >= 0)[0]] = 0

    with pytest.raises(ModelError, match="valid trees"):
        load_baseline(_rewrite(forest, tmp_path / "cycle.safetensors", edit_arrays=cycle))
    with pytest.raises(ModelError, match="lacks the array 'coef'"):
        load_baseline(_rewrite(svm, tmp_path / "nocoef.safetensors", edit_arrays=lambda a: a.pop("classifier.coef")))
    with pytest.raises(ModelError, match="no component uses"):
        load_baseline(_rewrite(svm, tmp_path / "extra.safetensors", edit_arrays=lambda a: a.update({"payload": np.zeros(4)})))
    with pytest.raises(ModelError, match="dimension 1 should be"):
        load_baseline(_rewrite(svm, tmp_path / "shape.safetensors", edit_arrays=lambda a: a.update({"classifier.coef": a["classifier.coef"][:, :5].copy()})))
    with pytest.raises(ModelError, match="unknown classifier 'svc_pickle'"):
        load_baseline(_rewrite(svm, tmp_path / "name.safetensors", edit_meta=lambda c: c["classifier"].update(name="svc_pickle")))
    with pytest.raises(ModelError, match="newer than this emolens"):
        load_baseline(_rewrite(svm, tmp_path / "v9.safetensors", edit_meta=lambda c: c.update(format_version=9)))


# -- options ------------------------------------------------------------------------------------


def test_params_are_checked_with_suggestions(faces):
    assert parse_param_overrides(["linear_svm.C=0.5", "mlp.hidden=[64, 32]"]) == {"linear_svm": {"C": 0.5}, "mlp": {"hidden": [64, 32]}}
    with pytest.raises(ConfigError, match="look like component"):
        parse_param_overrides(["C=0.5"])
    with pytest.raises(ConfigError, match="Did you mean 'C'"):
        run_baselines(faces, params={"linear_svm": {"c": 1.0}}, out=None)
    with pytest.raises(ConfigError, match="must be like"):
        run_baselines(faces, params={"linear_svm": {"C": "big"}}, out=None)
    with pytest.raises(ConfigError, match="Did you mean 'random_forest'"):
        run_baselines(faces, classifiers=["random_forrest"], out=None)
    with pytest.raises(ConfigError, match="not among the chosen"):
        run_baselines(faces, params={"mlp": {"alpha": 0.1}}, out=None)


def test_in_memory_run_without_out_writes_nothing(faces, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmp = run_baselines(faces, features=["pca"], classifiers=["linear_svm"], params={"pca": {"n_components": 8}}, out=None, train_fraction=0.5)
    assert cmp.out_dir is None and list(tmp_path.iterdir()) == []
    assert isinstance(cmp.runs[0].model, BaselineModel) and cmp.runs[0].n_train < int((faces.split == 0).sum())


def test_cli_hands_arguments_to_run_baselines(monkeypatch, tmp_path, capsys):
    seen = {}

    class Fake:
        out_dir = tmp_path / "o"

        def to_markdown(self):
            return "TABLE"

    def fake_run(data, **kwargs):
        seen.update(data=data, **kwargs)
        return Fake()

    monkeypatch.setattr(emolens.baselines, "run_baselines", fake_run)
    argv = ["baseline", "--data", "archive.zip", "-f", "hog,pca", "-c", "mlp", "-c", "linear_svm", "-p", "mlp.alpha=0.01",
            "--out", str(tmp_path / "o"), "--split", "val", "--seed", "3", "--train-fraction", "0.25", "--imbalance", "none,smote"]
    assert main(argv) == 0
    assert seen == {
        "data": "archive.zip", "features": ["hog", "pca"], "classifiers": ["mlp", "linear_svm"], "params": {"mlp": {"alpha": 0.01}},
        "out": tmp_path / "o", "split": "val", "seed": 3, "train_fraction": 0.25, "imbalance": ["none", "smote"], "progress": True,
    }
    assert "TABLE" in capsys.readouterr().out


# -- SMOTE and SMOTE-ENN on the features (imbalanced-learn) --------------------------------------


SKEW_PARAMS = {"pca": SMALL["pca"], "linear_svm": {"C": 1.0}}  # C=1 learns these few faces: a calibrated temperature


@pytest.fixture(scope="module")
def skewed_faces(faces):
    """`faces` with disgust cut to 3 train rows: the imbalance SMOTE exists for."""
    pytest.importorskip("imblearn", reason="SMOTE needs the imbalance extra: pip install 'emolens[imbalance]'")
    train, disgust = faces.split == 0, faces.labels == faces.classes.index("disgust")
    drop = np.flatnonzero(train & disgust)[3:]
    return faces.subset(np.setdiff1d(np.arange(len(faces)), drop))


@pytest.mark.filterwarnings("ignore:fitted temperature")  # SMOTE-ENN leaves a few synthetic faces: an untrained-looking fit is expected
def test_smote_rows_fit_the_classifier_on_resampled_features(skewed_faces):
    cmp = run_baselines(skewed_faces, features=["pca"], classifiers=["linear_svm"], params=SKEW_PARAMS, out=None,
                        imbalance=["none", "smote", "smote_enn"])
    names = [r.model.name for r in cmp.runs]
    assert names == ["pca+linear_svm", "pca+linear_svm+smote", "pca+linear_svm+smote_enn"]
    plain, smote, enn = cmp.runs
    counts = np.bincount(skewed_faces.labels[skewed_faces.split == 0])
    assert plain.n_train == counts.sum() and smote.n_train == counts.max() * len(counts)  # every class raised to the largest
    assert enn.n_train < smote.n_train  # ENN removed the rows its neighbours outvote
    assert [r.model.training["imbalance"] for r in cmp.runs] == ["none", "smote", "smote_enn"]
    assert {r.report.n_images for r in cmp.runs} == {plain.report.n_images}  # one test set for all
    # A different training set gives a different classifier: the resampling reached the fit.
    assert not np.array_equal(plain.model.classifier.coef_, smote.model.classifier.coef_)
    again = run_baselines(skewed_faces, features=["pca"], classifiers=["linear_svm"], params=SKEW_PARAMS, out=None, imbalance=["smote"])
    assert again.runs[0].report.accuracy == smote.report.accuracy  # seeded


def test_smote_without_the_extra_names_it(skewed_faces, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imblearn.over_sampling", None)  # what an install without the extra sees
    with pytest.raises(ConfigError, match=r"pip install 'emolens\[imbalance\]'"):
        run_baselines(skewed_faces, features=["pca"], classifiers=["linear_svm"], out=None, imbalance=["smote"])
    with pytest.raises(ConfigError, match="Did you mean 'smote'"):
        run_baselines(skewed_faces, features=["pca"], out=None, imbalance=["smoke"])
