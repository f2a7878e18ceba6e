"""`evaluate` a model on one split of a dataset, and `calibrate_model` on the validation split.

Both run the shared inference path (`emolens.inference.predict_logits`), so what is measured
here is what photos, video and HTTP get. Nothing is ever fitted on the test split.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from emolens.data import FaceDataset
    from emolens.evaluation.report import EvaluationReport

_CHUNK_BATCHES = 4  # batches per predict_logits call: keeps the device busy and the progress bar moving


def _check_options(split: str, tta: str, batch_size: int, n_bins: int) -> None:
    from emolens.data import SPLITS
    from emolens.inference import TTA_MODES

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if tta not in TTA_MODES:
        raise ConfigError(f"unknown test-time augmentation {tta!r}; expected one of {', '.join(TTA_MODES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")


def _resolve_model(model: nn.Module | str | Path | None, device: str | None) -> tuple[nn.Module, str | None]:
    """A loaded model and the file it came from (None when a module was passed in)."""
    import torch.nn as nn

    if isinstance(model, nn.Module):
        if getattr(model, "emolens_config", None) is None:
            raise ModelError("the model carries no emolens_config; build it with emolens.models.build_model or load it with load_model")
        return model, None
    if model is not None and not isinstance(model, str | Path):
        raise ModelError(f"model must be an nn.Module, a model file, a run folder or None (the shipped default), got {type(model).__name__}")
    from emolens.models import load_model, resolve_model_path

    path = resolve_model_path(model)
    return load_model(path, device=device or "cpu"), str(path.resolve())


def _resolve_dataset(dataset: FaceDataset | str | Path, image_size: int) -> FaceDataset:
    """A FaceDataset as given, or one loaded from a path at the model's stored face size."""
    from emolens.data import FaceDataset

    if isinstance(dataset, FaceDataset):
        return dataset
    if not isinstance(dataset, str | Path):
        raise DataError(f"dataset must be a FaceDataset or a path to one, got {type(dataset).__name__}")
    from emolens.data import load_dataset

    return load_dataset(dataset, image_size=image_size)


def _split_rows(dataset: FaceDataset, split: str, purpose: str) -> np.ndarray:
    """Indices of `split`, or DataError saying which splits the dataset does have."""
    from emolens.data import SPLITS

    rows = np.flatnonzero(dataset.split == SPLITS.index(split))
    if len(rows) == 0:
        have = ", ".join(f"{s} ({int((dataset.split == i).sum())})" for i, s in enumerate(SPLITS) if (dataset.split == i).any()) or "none"
        raise DataError(f"{dataset.source or 'dataset'}: has no {split!r} split to {purpose}; splits present: {have}")
    return rows


def _labels_in_model_order(dataset: FaceDataset, model_labels: tuple[str, ...]) -> np.ndarray:
    """Dataset label indices re-expressed as indices into the model's label list."""
    missing = [c for c in dataset.classes if c not in model_labels]
    if missing:
        raise DataError(
            f"{dataset.source or 'dataset'}: classes {missing} are not among the model's labels {list(model_labels)}; "
            "evaluate with a model trained on these classes, or drop them with a label map when loading"
        )
    remap = np.array([model_labels.index(c) for c in dataset.classes], dtype=np.int64)
    return remap[np.asarray(dataset.labels, dtype=np.int64)]


def _logits(model: nn.Module, images: np.ndarray, *, tta: str, batch_size: int, progress: bool, desc: str) -> tuple[np.ndarray, float]:
    """Mean-over-TTA logits (N, C) and the seconds the network took."""
    from tqdm.auto import tqdm

    from emolens.inference import predict_logits

    chunk = batch_size * _CHUNK_BATCHES
    out = []
    start = time.perf_counter()
    with tqdm(total=len(images), desc=desc, unit="img", disable=not progress, mininterval=0.5) as bar:
        for i in range(0, len(images), chunk):
            out.append(predict_logits(model, images[i : i + chunk], batch_size=batch_size, tta=tta))
            bar.update(len(out[-1]))
    seconds = time.perf_counter() - start
    return np.concatenate(out) if out else np.zeros((0, len(model.emolens_config.labels)), np.float32), seconds


def _model_name(model: nn.Module, path: str | None) -> str:
    cfg = model.emolens_config
    return cfg.name or (Path(path).stem if path else "") or cfg.arch


def _device_name(model: nn.Module) -> str:
    dev = next(model.parameters()).device
    if dev.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        import torch

        return f"cpu ({torch.get_num_threads()} threads)"
    return str(dev)


def split_labels_and_logits(
    model: nn.Module | str | Path | None, dataset: FaceDataset | str | Path, *, split: str = "test", tta: str = "none",
    batch_size: int = 256, device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Per face of `split`: its label and the model's logits, as `evaluate` computes them, for
    comparisons face by face (`benchmarks/tta.py`): (labels (N,) as indices into the model's
    labels, logits (N, C) before the temperature, the model's labels)."""
    _check_options(split, tta, batch_size, 15)  # 15: the report's bins, unused here
    net, _, ds, rows = _model_and_split(model, dataset, split, device)
    logits, _ = _logits(net, ds.images[rows], tta=tta, batch_size=batch_size, progress=False, desc=split)
    labels = tuple(net.emolens_config.labels)
    return _labels_in_model_order(ds, labels)[rows], logits, labels


def _model_and_split(
    model: nn.Module | str | Path | None, dataset: FaceDataset | str | Path, split: str, device: str | None,
) -> tuple[nn.Module, str | None, FaceDataset, np.ndarray]:
    """The network (and its file), the dataset read at its input size, and the rows of `split`."""
    net, path = _resolve_model(model, device)
    ds = _resolve_dataset(dataset, net.emolens_config.preprocess.image_size)
    return net, path, ds, _split_rows(ds, split, "evaluate")


def evaluate(
    model: nn.Module | str | Path | None,
    dataset: FaceDataset | str | Path,
    *,
    split: str = "test",
    tta: str = "none",
    batch_size: int = 256,
    n_bins: int = 15,
    device: str | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Measure a model on one split: accuracy, balanced accuracy, macro-F1, per-class figures,
    confusion matrix, NLL and ECE of the calibrated probabilities, speed, and on datasets with
    a train split the accuracy on the faces whose pixels do not occur in train.

    model: a loaded module (with `emolens_config`), a model file, a run folder, or None for
        the shipped default. `device` applies when emolens loads the model.
    dataset: a `FaceDataset` or anything `emolens.data.load_dataset` reads.

    >>> report = evaluate("runs/exp/best.safetensors", "archive.zip", tta="flip")  # doctest: +SKIP
    >>> report.accuracy, report.save("runs/eval")                                   # doctest: +SKIP
    """
    _check_options(split, tta, batch_size, n_bins)
    net, path, ds, rows = _model_and_split(model, dataset, split, device)
    cfg = net.emolens_config
    logits, seconds = _logits(net, ds.images[rows], tta=tta, batch_size=batch_size, progress=progress, desc=f"evaluating {split}")
    return report_from_logits(
        ds, split, logits, temperature=cfg.temperature, classes=tuple(cfg.labels), model_name=_model_name(net, path), arch=cfg.arch,
        model_path=path, seconds=seconds, device=_device_name(net), batch_size=batch_size, tta=tta, n_bins=n_bins,
    )


def _unseen_faces_figures(dataset: FaceDataset, split: str, y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any] | None:
    """Accuracy and macro-F1 on the faces of `split` whose pixels are not in train, or None without a train split.

    FER-2013 holds byte-identical faces in train and test: accuracy on those measures memory, not
    recognition, so the report also gives the figures without them."""
    if split == "train" or not dataset.has_split("train"):
        return None
    from emolens.data.stats import duplicate_mask
    from emolens.evaluation.metrics import accuracy_and_macro_f1

    keep = ~duplicate_mask(dataset, split=split, against="train")
    acc, f1 = accuracy_and_macro_f1(y_true[keep], probs[keep].argmax(axis=1), probs.shape[1])
    return {"n_images": int(keep.sum()), "n_duplicates": int((~keep).sum()), "accuracy": acc, "macro_f1": f1}


def report_from_logits(
    dataset: FaceDataset,
    split: str,
    logits: np.ndarray,
    *,
    temperature: float,
    classes: tuple[str, ...],
    model_name: str,
    arch: str,
    model_path: str | None,
    seconds: float,
    device: str = "cpu",
    batch_size: int = 0,
    tta: str = "none",
    n_bins: int = 15,
) -> EvaluationReport:
    """The `EvaluationReport` of logits (N, C) over `classes`, one row per face of `split`.

    `evaluate` runs a network and comes here; models that are not networks (the classic
    baselines, an Ultralytics classifier) produce logits their own way and come here too, so
    every approach is measured by the same code. Computes the headline and per-class metrics of
    softmax(logits / temperature), calibration at that temperature and at 1, and, when the
    dataset has a train split, the figures on the faces whose pixels are not in train.
    """
    from emolens import __version__
    from emolens.evaluation.calibration import ece_from_bins, reliability_bins, temperature_nll
    from emolens.evaluation.metrics import classification_metrics
    from emolens.evaluation.report import EvaluationReport
    from emolens.inference import softmax_with_temperature

    rows = _split_rows(dataset, split, "evaluate")
    logits = np.asarray(logits)
    if logits.shape != (len(rows), len(classes)):
        raise DataError(f"logits must be ({len(rows)}, {len(classes)}) for the {split} split, got {logits.shape}")
    y_true = _labels_in_model_order(dataset, tuple(classes))[rows]
    probs = softmax_with_temperature(logits, temperature)
    metrics = classification_metrics(y_true, probs, classes)
    bins = reliability_bins(probs, y_true, n_bins)
    dedup = _unseen_faces_figures(dataset, split, y_true, probs)
    return EvaluationReport(
        model_name=model_name, model_path=model_path, arch=arch, dataset=dataset.source, dataset_sha256=dataset.source_sha256,
        split=split, tta=tta, classes=tuple(classes), n_images=len(rows),
        accuracy=metrics["accuracy"], balanced_accuracy=metrics["balanced_accuracy"], macro_f1=metrics["macro_f1"],
        nll=metrics["nll"], ece=ece_from_bins(bins), temperature=float(temperature),
        nll_uncalibrated=temperature_nll(logits, y_true, 1.0),
        ece_uncalibrated=ece_from_bins(reliability_bins(softmax_with_temperature(logits, 1.0), y_true, n_bins)),
        per_class=metrics["per_class"], confusion=metrics["confusion"], reliability=bins, dedup=dedup,
        timing={"seconds": seconds, "images_per_s": len(rows) / seconds if seconds > 0 else None, "batch_size": batch_size, "device": device},
        emolens_version=__version__, created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dataclass
class CalibrationResult:
    """What `calibrate_model` fitted and wrote. All figures are on the validation split."""

    path: Path  # the new model file
    temperature: float
    temperature_before: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n_images: int
    tta: str
    class_bias: list[float] | None = None  # per-class logit offsets folded into the classifier (None: not fitted)
    val_acc_before: float | None = None  # with class_bias: val accuracy / macro-F1 before and after the offsets
    val_acc_after: float | None = None
    val_f1_before: float | None = None
    val_f1_after: float | None = None
    min_recall: float | None = None

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _new_model_path(out_path: str | Path) -> Path:
    out = Path(out_path).expanduser()
    if out.suffix != ".safetensors":  # save_model does the same; check the name it will really write
        out = out.with_suffix(".safetensors")
    for p in (out, out.with_suffix(".json")):
        if p.exists():
            raise ModelError(f"{p}: already exists; calibrate_model never overwrites a model file, choose a new out_path")
    return out


def _fold_class_bias(net: nn.Module, logits: np.ndarray, y_val: np.ndarray, min_recall: float) -> tuple[nn.Module, np.ndarray, dict[str, Any]]:
    """A copy of `net` with per-class logit offsets fitted on validation folded into its bias, the
    shifted logits, and what the offsets did to validation accuracy and macro-F1."""
    from emolens.evaluation.calibration import fit_class_bias
    from emolens.evaluation.metrics import macro_f1_score
    from emolens.models import add_class_bias

    bias = fit_class_bias(logits, y_val, min_recall=min_recall)
    n = logits.shape[1]
    before, after = logits.argmax(1), (logits + bias).argmax(1)
    info = {
        "class_bias": [round(float(b), 4) for b in bias], "min_recall": min_recall,
        "val_acc_before": float((before == y_val).mean()), "val_acc_after": float((after == y_val).mean()),
        "val_f1_before": macro_f1_score(y_val, before, n), "val_f1_after": macro_f1_score(y_val, after, n),
    }
    return add_class_bias(copy.deepcopy(net), bias), logits + bias, info  # the caller's module is left as it was


def calibrate_model(
    model: nn.Module | str | Path | None,
    dataset: FaceDataset | str | Path,
    out_path: str | Path,
    *,
    tta: str = "none",
    batch_size: int = 256,
    n_bins: int = 15,
    device: str | None = None,
    progress: bool = False,
    class_bias: bool = False,
    min_recall: float = 0.0,
) -> CalibrationResult:
    """Fit the softmax temperature on the validation split and write a NEW model file with it.

    class_bias=True first fits per-class logit offsets that maximise validation macro-F1
    (`fit_class_bias`) and folds them into the classifier's bias; the temperature is then fitted
    on the shifted logits. This changes predictions (for recall on rare classes), unlike T.
    `min_recall` asks the offsets to lift every class to that validation recall.

    The weights are copied unchanged; the new file's config carries the fitted temperature and,
    in `metrics["calibration"]`, the validation ECE and NLL before and after. Use the same `tta`
    you will predict with: averaging views softens logits, so the best T depends on it.
    The test split is never touched.
    """
    from emolens.evaluation.calibration import expected_calibration_error, fit_temperature, temperature_nll
    from emolens.inference import softmax_with_temperature
    from emolens.models import save_model

    _check_options("val", tta, batch_size, n_bins)
    out = _new_model_path(out_path)
    net, _ = _resolve_model(model, device)
    cfg = net.emolens_config
    ds = _resolve_dataset(dataset, cfg.preprocess.image_size)
    rows = _split_rows(ds, "val", "fit the temperature on (calibration never uses the test split)")
    y_val = _labels_in_model_order(ds, tuple(cfg.labels))[rows]

    logits, _ = _logits(net, ds.images[rows], tta=tta, batch_size=batch_size, progress=progress, desc="calibrating on val")
    t_before = float(cfg.temperature)
    bias_info: dict[str, Any] = {}
    if class_bias:
        net, logits, bias_info = _fold_class_bias(net, logits, y_val, min_recall)
    t_new = fit_temperature(logits, y_val)
    result = CalibrationResult(
        path=out,
        temperature=t_new,
        temperature_before=t_before,
        ece_before=expected_calibration_error(softmax_with_temperature(logits, t_before), y_val, n_bins),
        ece_after=expected_calibration_error(softmax_with_temperature(logits, t_new), y_val, n_bins),
        nll_before=temperature_nll(logits, y_val, t_before),
        nll_after=temperature_nll(logits, y_val, t_new),
        n_images=len(rows),
        tta=tta,
        **bias_info,
    )
    record = {**result.summary(), "split": "val", "n_bins": n_bins, "dataset": ds.source, "dataset_sha256": ds.source_sha256}
    del record["path"]
    new_cfg = replace(cfg, temperature=t_new, metrics={**cfg.metrics, "calibration": record})
    save_model(net, out, config=new_cfg)  # the caller's module and its config are left as they were
    return result
