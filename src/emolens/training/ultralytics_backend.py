"""`emolens train --backend ultralytics`: a YOLOv8-cls model trained by Ultralytics on emolens data.

The dataset emolens reads is exported once into the run folder in the Ultralytics
classification layout (`emolens.export.to_ultralytics_cls`); a classifier is built from its
yaml (`yolov8n-cls.yaml` by default: random initialisation, nothing downloaded) and trained by
Ultralytics on train, selected on val; its best weights then predict the test split and are
measured with the same `EvaluationReport` as every emolens model, a softmax temperature fitted
on val first, as `emolens train` does.

Ultralytics is an optional extra (`pip install 'emolens[ultralytics]'`) and needs
torchvision built for the installed torch. Its weights (`best.pt`) are its own pickle-based
format: emolens opens only the file that this run has just written.

Nothing is downloaded: the model comes from its yaml, and before Ultralytics is first imported
YOLO_OFFLINE=1 and YOLO_AUTOINSTALL=0 are set (unless the environment sets them already), so
Ultralytics skips its online checks, its usage events and any `pip install` of its own; on
CUDA its AMP check then skips the yolo26n.pt download it would otherwise attempt.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset
    from emolens.evaluation import EvaluationReport
    from emolens.training import TrainConfig

DEFAULT_YAML = "yolov8n-cls.yaml"  # the smallest YOLOv8 classifier, 1.4M parameters at 7 classes
_STRIDE = 32  # Ultralytics rounds the image size up to a multiple of its largest stride


# Read by Ultralytics once, at import: offline (no DNS probe, no events, AMP check without its
# weights download) and no automatic `pip install` of missing requirements.
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}


def import_ultralytics() -> Any:
    """The ultralytics module, or ConfigError with the install line and the import's own error."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ultralytics
    except Exception as exc:  # ImportError, or torchvision missing/mismatched inside ultralytics
        import torch

        raise ConfigError(
            "--backend ultralytics needs the optional extra: pip install 'emolens[ultralytics]'. Ultralytics imports "
            f"torchvision, which must be the build made for the installed torch {torch.__version__} (a CPU-only torch "
            f"needs the CPU torchvision wheel of the same release). Importing ultralytics failed: {exc.__class__.__name__}: {exc}"
        ) from None
    return ultralytics


@dataclass
class UltralyticsResult:
    """What `train_ultralytics` produced."""

    run_dir: Path
    weights_path: Path  # Ultralytics' best.pt
    report: EvaluationReport  # on the test split (or val when there is no test split)
    report_dir: Path
    temperature: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "weights_path": str(self.weights_path), "report_dir": str(self.report_dir),
            "temperature": self.temperature, "seconds": round(self.seconds, 1), **self.report.summary(),
        }


def model_yaml_for(arch: str) -> str:
    """The yaml to build: model.arch when it names one (yolov8s-cls.yaml, a path), else the default."""
    if arch.endswith((".pt", ".pth")):
        raise ConfigError(f"model.arch = {arch!r}: the ultralytics backend builds models from a yaml only (no downloaded weights)")
    return arch if arch.endswith((".yaml", ".yml")) else DEFAULT_YAML


def _faces_bgr(images: np.ndarray) -> list[np.ndarray]:
    return [np.repeat(im[:, :, None], 3, axis=2) for im in images]  # the 3 channels Ultralytics reads from a PNG


def _predict_logits(model: Any, images: np.ndarray, classes: tuple[str, ...], imgsz: int, batch: int) -> np.ndarray:
    """log-probabilities (N, C) in `classes` order for uint8 faces (N, S, S)."""
    names = {int(k): v for k, v in model.names.items()}
    missing = [c for c in classes if c not in names.values()]
    if missing:
        raise ModelError(f"the Ultralytics model's classes {sorted(names.values())} lack {missing}")
    order = [next(k for k, v in names.items() if v == c) for c in classes]
    out = []
    for start in range(0, len(images), batch):
        results = model.predict(source=_faces_bgr(images[start : start + batch]), imgsz=imgsz, batch=batch, verbose=False)
        out += [r.probs.data.float().cpu().numpy()[order] for r in results]
    probs = np.stack(out) if out else np.zeros((0, len(classes)), np.float32)
    return np.log(np.clip(probs, 1e-7, None))


def train_ultralytics(config: TrainConfig, *, dataset: FaceDataset | None = None) -> UltralyticsResult:
    """Train a YOLO classifier from its yaml on the config's data; evaluate it like `emolens evaluate`.

    Uses from the config: data.path / train_fraction / batch_size, model.arch (a yaml name,
    default yolov8n-cls.yaml), model.preprocess.input_size (rounded up to a multiple of 32),
    schedule.epochs / early_stop_patience / warmup_epochs / name (cosine, constant; plateau
    decays linearly) / min_lr_ratio, optim.name / lr / weight_decay / momentum or betas[0],
    aug.hflip, run.seed / device / out_dir / name / plots. The rest of the augmentation is
    Ultralytics' own classification recipe.
    """
    if config.schedule.max_steps_per_epoch:
        raise ConfigError(
            "--backend ultralytics trains whole epochs; schedule.max_steps_per_epoch is for the emolens trainer. "
            "Cap the budget with data.train_fraction and schedule.epochs instead"
        )
    ultralytics = import_ultralytics()  # before minutes of data loading
    from emolens.data import SPLITS
    from emolens.data.splits import training_rows
    from emolens.evaluation.calibration import fit_temperature
    from emolens.evaluation.evaluator import report_from_logits
    from emolens.export import to_ultralytics_cls
    from emolens.paths import free_dir
    from emolens.training import load_training_data

    yaml_name = model_yaml_for(config.model.arch)
    ds = dataset if dataset is not None else load_training_data(config, progress=config.run.progress)
    # The rows `emolens train` trains on: the same train_fraction draw, the same val carved from
    # train on hand-built data (data.val_fraction, run.seed).
    rows = training_rows(ds, val_fraction=config.data.val_fraction, train_fraction=config.data.train_fraction, seed=config.run.seed)
    split = ds.split.copy()
    split[rows["val"]] = SPLITS.index("val")
    keep = np.sort(np.concatenate([rows["train"], rows["val"], rows["test"]]))
    ds = replace(ds.subset(keep), split=split[keep])
    # Absolute: Ultralytics would put a relative `project` under its own runs_dir (runs/classify/...).
    run_dir = free_dir(Path(config.run.out_dir) / (config.run.name or Path(yaml_name).stem)).resolve()
    data_dir = run_dir / "dataset"
    to_ultralytics_cls(ds, data_dir, progress=config.run.progress)
    config.save(run_dir / "config.yaml")

    imgsz = max(_STRIDE, math.ceil(config.model.preprocess.input_size / _STRIDE) * _STRIDE)
    device = None if config.run.device == "auto" else config.run.device
    sched = config.schedule  # Ultralytics has cosine and linear decay; plateau decays linearly
    t0 = time.perf_counter()
    model = ultralytics.YOLO(yaml_name, task="classify")
    model.train(
        data=str(data_dir), epochs=config.schedule.epochs, imgsz=imgsz, batch=config.data.batch_size, seed=config.run.seed,
        deterministic=True, device=device, project=str(run_dir), name="train", exist_ok=False, pretrained=False,
        optimizer="AdamW" if config.optim.name == "adamw" else "SGD", lr0=config.optim.lr, weight_decay=config.optim.weight_decay,
        momentum=config.optim.momentum if config.optim.name == "sgd" else config.optim.betas[0],  # AdamW's beta1 in Ultralytics
        warmup_epochs=config.schedule.warmup_epochs, cos_lr=sched.name == "cosine", lrf=1.0 if sched.name == "constant" else sched.min_lr_ratio,
        fliplr=config.aug.hflip if config.aug.enabled else 0.0,
        patience=config.schedule.early_stop_patience or config.schedule.epochs + 1, plots=config.run.plots, verbose=False,
        cache="ram",  # 48x48 faces: decoded once instead of re-reading every PNG every epoch
    )
    seconds = time.perf_counter() - t0
    best = Path(model.trainer.best)
    if not best.is_file():
        raise ModelError(f"{best}: Ultralytics wrote no best weights; see the log in {run_dir / 'train'}")
    trained = ultralytics.YOLO(str(best), task="classify")  # the file this run just wrote, nothing else
    classes = tuple(ds.classes)
    bs = config.data.eval_batch_size
    val_idx = np.flatnonzero(ds.split == SPLITS.index("val"))
    temperature = fit_temperature(_predict_logits(trained, ds.images[val_idx], classes, imgsz, bs), ds.labels[val_idx])
    eval_split = "test" if ds.has_split("test") else "val"
    idx = np.flatnonzero(ds.split == SPLITS.index(eval_split))
    if len(idx) == 0:
        raise DataError(f"{ds.source or 'dataset'}: nothing to evaluate on")
    t1 = time.perf_counter()
    logits = _predict_logits(trained, ds.images[idx], classes, imgsz, bs)
    report = report_from_logits(
        ds, eval_split, logits, temperature=temperature, classes=classes, model_name=run_dir.name, arch=f"ultralytics:{yaml_name}",
        model_path=str(best), seconds=time.perf_counter() - t1, device=str(device or "auto"), batch_size=bs,
    )
    report_dir = report.save(run_dir / f"{eval_split}-report")
    return UltralyticsResult(run_dir, best, report, report_dir, temperature, seconds)
