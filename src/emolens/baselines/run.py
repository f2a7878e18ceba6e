"""`run_baselines`: fit every (feature, classifier) pair on one dataset and compare them.

For each pair: features of the train faces, standardised on train; the classifier fitted on
train; a softmax temperature fitted on validation; the evaluation report on the test split
(the same `EvaluationReport` as `emolens evaluate`); the model saved as safetensors. The
comparison lands in `baselines.md`, `baselines.csv` and `baselines.json`.

Example::

    cmp = run_baselines("archive.zip", features=["hog", "pca"], classifiers=["linear_svm", "mlp"])
    print(cmp.to_markdown())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emolens.baselines.classifiers import CLASSIFIERS
from emolens.baselines.features import FEATURES, Standardizer, normalized_pixels
from emolens.baselines.model import BaselineModel
from emolens.baselines.params import merge_params
from emolens.checks import check_names
from emolens.data import SPLITS, FaceDataset
from emolens.data.splits import VAL_FRACTION, training_rows
from emolens.errors import ConfigError, DataError
from emolens.evaluation import EvaluationReport
from emolens.preprocessing import PreprocessConfig

COLUMNS = [
    ("name", "baseline", None), ("accuracy", "test accuracy", "pct"), ("macro_f1", "macro-F1", "pct"),
    ("disgust_recall", "disgust recall", "pct"), ("dedup_accuracy", "accuracy, faces not in train", "pct"),
    ("val_accuracy", "val accuracy", "pct"), ("feature_seconds", "features (s)", "s"), ("fit_seconds", "fit (s)", "s"),
    ("fit_cpu_seconds", "fit CPU (s)", "s"),
]


@dataclass
class BaselineRun:
    """One fitted and evaluated (feature, classifier) pair."""

    model: BaselineModel
    report: EvaluationReport
    model_path: Path | None
    report_dir: Path | None
    feature_seconds: float  # feature extraction on the training faces
    fit_seconds: float  # classifier fit (plus temperature on val), wall time
    fit_cpu_seconds: float  # the same span in CPU time of this process: comparable on a shared machine
    val_accuracy: float
    n_train: int

    def summary(self) -> dict[str, Any]:
        from emolens.evaluation.report import class_recall

        s = self.report.summary()
        return {
            "name": self.model.name, "feature": self.model.feature.name, "classifier": self.model.classifier.name,
            "accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "balanced_accuracy": s["balanced_accuracy"],
            "disgust_recall": class_recall(self.report, "disgust"), "dedup_accuracy": s.get("dedup_accuracy"),
            "val_accuracy": self.val_accuracy, "nll": s["nll"], "ece": s["ece"], "temperature": self.model.temperature,
            "feature_seconds": round(self.feature_seconds, 2), "fit_seconds": round(self.fit_seconds, 2),
            "fit_cpu_seconds": round(self.fit_cpu_seconds, 2), "n_train": self.n_train,
            "n_test": self.report.n_images, "model_path": str(self.model_path) if self.model_path else None,
        }


@dataclass
class BaselineComparison:
    """All runs of one `run_baselines` call. Every export derives from `summary()`."""

    runs: list[BaselineRun]
    out_dir: Path | None
    dataset: str
    split: str
    seed: int
    train_fraction: float
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self.runs]

    def to_markdown(self) -> str:
        from emolens.evaluation.tables import markdown_table

        n_train = self.runs[0].n_train if self.runs else 0
        head = (
            f"Baselines on `{self.dataset}`: trained on {n_train} train faces (train_fraction {self.train_fraction}, seed {self.seed}), "
            f"temperature fitted on val, measured on the **{self.split}** split.\n\n"
        )
        return head + markdown_table(self.summary(), COLUMNS)

    def to_df(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.summary()).set_index("name")


def _check_params(params: dict[str, dict[str, Any]] | None, features: list[str], classifiers: list[str]) -> dict[str, dict[str, Any]]:
    params = dict(params or {})
    known = {**FEATURES, **CLASSIFIERS}
    for component, values in params.items():
        if component not in known:
            check_names("component in params", [component], known)
        if not isinstance(values, dict):
            raise ConfigError(f"params[{component!r}] must be a mapping of parameter -> value, got {values!r}")
        merge_params(component, known[component].DEFAULTS, values)  # raises on unknown keys or bad types
        if component not in features and component not in classifiers:
            raise ConfigError(f"parameters given for {component!r}, which is not among the chosen {features + classifiers}")
    return params


def _resolve_dataset(data: FaceDataset | str | Path, preprocess: PreprocessConfig, seed: int, progress: bool) -> FaceDataset:
    if isinstance(data, FaceDataset):
        return data
    if str(data) == "synthetic":
        from emolens.data.synthetic import make_synthetic_dataset

        return make_synthetic_dataset(300, preprocess.image_size, seed=seed)
    from emolens.data import load_dataset

    return load_dataset(data, image_size=preprocess.image_size, seed=seed, progress=progress)


@dataclass
class _Features:
    """One feature extractor fitted on train, and what it made of the faces."""

    name: str
    preprocess: PreprocessConfig  # how the faces were normalised before the extractor
    feature: Any  # a fitted features.FEATURES entry
    scaler: Standardizer
    z: dict[str, np.ndarray]  # standardised features (N, D) of "val" and the measured split
    seconds: dict[str, float]  # feature extraction per split
    train_sets: dict[str, tuple[np.ndarray, np.ndarray, float]]  # imbalance method -> (features, labels, resampling seconds)
    fit_seconds: float  # fitting the extractor and the scaler on train, and extracting train's features


def _features(
    ds: FaceDataset, rows: dict[str, np.ndarray], fname: str, params: dict[str, Any] | None, preprocess: PreprocessConfig, split: str,
    imbalance: list[str], seed: int, progress: bool,
) -> _Features:
    """Fit feature `fname` and the standardiser on train; features of val and `split`; train resampled per `imbalance` method."""
    from emolens.studies.resampling import resample_arrays

    t0 = time.perf_counter()
    feat = FEATURES[fname](params)
    pixels = normalized_pixels(ds.images[rows["train"]], preprocess)
    raw = feat.fit(pixels, seed).transform(pixels, progress=progress)
    scaler = Standardizer().fit(raw)
    z_train = scaler.transform(raw)
    fit_seconds = time.perf_counter() - t0
    del pixels, raw
    z, seconds = {}, {}
    for s in dict.fromkeys(("val", split)):
        t1 = time.perf_counter()
        z[s] = scaler.transform(feat.transform(normalized_pixels(ds.images[rows[s]], preprocess), progress=progress))
        seconds[s] = time.perf_counter() - t1
    # Resampled once per feature, shared by its classifiers; "features (s)" of those rows includes it.
    y_train = ds.labels[rows["train"]]
    train_sets = {"none": (z_train, y_train, 0.0)}
    for method in imbalance:
        if method != "none":
            t1 = time.perf_counter()
            train_sets[method] = (*resample_arrays(z_train, y_train, method, seed=seed), time.perf_counter() - t1)
    return _Features(fname, preprocess, feat, scaler, z, seconds, train_sets, fit_seconds)


def _fit_and_measure(
    ds: FaceDataset, rows: dict[str, np.ndarray], fs: _Features, cname: str, params: dict[str, Any] | None, method: str, split: str,
    seed: int, train_fraction: float, out_dir: Path | None,
) -> BaselineRun:
    """Fit classifier `cname` on the features of train (resampled by `method`), a temperature on
    val; the report on `split`; with `out_dir`, the model and report saved in a subfolder."""
    from emolens.evaluation.calibration import fit_temperature
    from emolens.evaluation.evaluator import report_from_logits

    z_fit, y_fit, resample_seconds = fs.train_sets[method]
    y_val = ds.labels[rows["val"]]
    t0, c0 = time.perf_counter(), time.process_time()
    clf = CLASSIFIERS[cname](params).fit(z_fit, y_fit, len(ds.classes), seed)
    val_logits = clf.logits(fs.z["val"])
    temperature = fit_temperature(val_logits, y_val)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    val_acc = float((val_logits.argmax(1) == y_val).mean())
    name = f"{fs.name}+{cname}" + ("" if method == "none" else f"+{method}")
    feature_seconds = fs.fit_seconds + resample_seconds
    model = BaselineModel(
        feature=fs.feature, scaler=fs.scaler, classifier=clf, labels=tuple(ds.classes), preprocess=fs.preprocess, temperature=temperature,
        name=name,
        training={
            "dataset": ds.source, "dataset_sha256": ds.source_sha256, "n_train": int(len(y_fit)), "imbalance": method,
            "train_fraction": train_fraction, "seed": seed, "feature_seconds": round(feature_seconds, 2),
            "fit_seconds": round(fit_seconds, 2), "fit_cpu_seconds": round(fit_cpu_seconds, 2),
        },
        metrics={"val_accuracy": val_acc},
    )
    t1 = time.perf_counter()
    logits = clf.logits(fs.z[split])
    # The report's speed is the whole path from uint8 faces: features (computed once) + classifier.
    report = report_from_logits(
        ds, split, logits, temperature=temperature, classes=tuple(ds.classes), model_name=name, arch=model.arch,
        model_path=None, seconds=fs.seconds[split] + time.perf_counter() - t1, batch_size=len(rows[split]),
    )
    model_path = report_dir = None
    if out_dir is not None:
        sub = out_dir / name.replace("+", "_")
        sub.mkdir()
        model_path = model.save(sub / "model.safetensors")
        report.model_path = str(model_path.resolve())
        report_dir = report.save(sub / "report")
    return BaselineRun(model, report, model_path, report_dir, feature_seconds, fit_seconds, fit_cpu_seconds, val_acc, int(len(y_fit)))


def run_baselines(
    data: FaceDataset | str | Path,
    *,
    features: list[str] | tuple[str, ...] = ("hog",),
    classifiers: list[str] | tuple[str, ...] = ("linear_svm",),
    params: dict[str, dict[str, Any]] | None = None,
    out: str | Path | None = "runs/baselines",
    split: str = "test",
    seed: int = 0,
    train_fraction: float = 1.0,
    imbalance: list[str] | tuple[str, ...] = ("none",),
    progress: bool = False,
) -> BaselineComparison:
    """Fit and evaluate every (feature, classifier) pair; with `out`, save models, reports and tables.

    data: a FaceDataset, anything `emolens.data.load_dataset` reads, or "synthetic".
    features: of "hog", "pca". classifiers: of "linear_svm", "rbf_svm", "random_forest", "mlp".
    params: per-component settings, e.g. {"linear_svm": {"C": 0.1}, "pca": {"n_components": 100}}.
    out: a folder; a non-empty one is never written into (out-2, out-3, ... is used instead).
    imbalance: "none" and/or "smote", "smote_enn" (imbalanced-learn): each classifier is also fitted on
        the standardised train features resampled that way; its rows are named "FEATURE+CLASSIFIER+smote".
    """
    from emolens.studies.resampling import RESAMPLERS, require_resamplers

    features = check_names("feature", list(features), FEATURES)
    classifiers = check_names("classifier", list(classifiers), CLASSIFIERS)
    params = _check_params(params, features, classifiers)
    imbalance = check_names("imbalance strategy", list(imbalance), dict.fromkeys(("none", *RESAMPLERS)))
    require_resamplers(imbalance)
    if split not in ("val", "test"):
        raise ConfigError(f"split must be 'val' or 'test', got {split!r}")
    preprocess = PreprocessConfig()
    ds = _resolve_dataset(data, preprocess, seed, progress)
    rows = training_rows(ds, val_fraction=VAL_FRACTION, train_fraction=train_fraction, seed=seed)
    if len(rows[split]) == 0:
        raise DataError(f"{ds.source or 'dataset'}: has no {split!r} split to measure on")
    out_dir = None
    if out is not None:
        from emolens.paths import free_dir

        out_dir = free_dir(out)
    runs: list[BaselineRun] = []
    for fname in features:
        fs = _features(ds, rows, fname, params.get(fname), preprocess, split, imbalance, seed, progress)
        for cname, method in ((c, m) for c in classifiers for m in imbalance):
            run = _fit_and_measure(ds, rows, fs, cname, params.get(cname), method, split, seed, train_fraction, out_dir)
            runs.append(run)
            if progress:
                from tqdm import tqdm

                tqdm.write(f"{run.model.name}: {split} accuracy {run.report.accuracy:.4f}, macro-F1 {run.report.macro_f1:.4f} (fit {run.fit_seconds:.1f}s)")
    cmp = BaselineComparison(runs=runs, out_dir=out_dir, dataset=ds.source, split=split, seed=seed, train_fraction=train_fraction)
    if out_dir is not None:
        from emolens.evaluation.tables import write_table

        cmp.files = write_table(out_dir, "baselines", cmp.summary(), cmp.to_markdown(), extra={"dataset": ds.source, "split": split, "seed": seed})
    return cmp


def evaluate_baseline(model: BaselineModel | str | Path, dataset: FaceDataset | str | Path, *, split: str = "test") -> EvaluationReport:
    """The `emolens evaluate` report of a saved (or in-memory) baseline model on one split."""
    from emolens.baselines.model import load_baseline
    from emolens.evaluation.evaluator import report_from_logits

    path = None
    if not isinstance(model, BaselineModel):
        path = str(Path(model).resolve())
        model = load_baseline(model)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    ds = _resolve_dataset(dataset, model.preprocess, 0, False)
    idx = np.flatnonzero(ds.split == SPLITS.index(split))
    if len(idx) == 0:
        raise DataError(f"{ds.source or 'dataset'}: has no {split!r} split to evaluate")
    t0 = time.perf_counter()
    logits = model.predict_logits(ds.images[idx])
    return report_from_logits(
        ds, split, logits, temperature=model.temperature, classes=model.labels, model_name=model.name or model.arch, arch=model.arch,
        model_path=path, seconds=time.perf_counter() - t0, batch_size=len(idx),
    )
