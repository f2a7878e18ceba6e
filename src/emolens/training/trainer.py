"""`train(config) -> TrainResult`: the training loop, single-process or data-parallel.

One epoch: draw this process's rows (imbalance sampler), augment each batch on the device,
optionally mix, forward under autocast (through the frozen teachers too when
`distill.teachers` is set), step. Then evaluate on validation (metrics summed
over processes), update schedule and early stopping, and on rank 0 write the `last`
checkpoint (and `best` when the monitored metric improved), the history, the curves and the
best model file. After the last epoch the best weights get a temperature fitted on
validation, stored in the model file with the metrics.

A kill at any instant leaves a run that resumes to the same end: each epoch's files are
written in an order where `checkpoints/last` commits the epoch and everything else (`best`,
the model file, the history, each file's JSON twin) can be re-derived from it, and resume
re-derives whatever a kill left behind (`run_files.repair_run`). The final model file is always built
from the best checkpoint's own weights and records their sha256 (`training.weights_sha256`).

Run folder `runs/<name>/`:
    config.yaml            the resolved config
    checkpoints/last.*     resume point (safetensors + readable JSON), every epoch
    checkpoints/best.*     the same at the best epoch
    best.safetensors/.json the best model, loadable with `emolens.models.load_model`
    history.csv/.json, curves.png
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emolens.data.dataset import FaceDataset
from emolens.data.splits import training_rows
from emolens.errors import ConfigError, ModelError
from emolens.evaluation.metrics import macro_f1_from_confusion
from emolens.models.io import ModelConfig, build_model
from emolens.preprocessing import PreprocessConfig
from emolens.runtime.devices import resolve_amp, resolve_channels_last, resolve_device
from emolens.training import distributed as dist_
from emolens.training.checkpoint import (
    best_record,
    encode_checkpoint,
    read_checkpoint,
    unflatten_optimizer,
    weights_sha256,
    write_checkpoint,
)
from emolens.training.config import TrainConfig, load_config
from emolens.training.history import plot_curves, write_history
from emolens.training.losses import distillation_loss, make_loss, mix_batch
from emolens.training.run_files import ModelRecord, finalize, repair_run, save_best_model
from emolens.training.samplers import epoch_indices, make_sampler
from emolens.training.schedule import EarlyStopping, LRSchedule
from emolens.transforms import create_transform

# Settings that may change when a run is resumed: they do not alter what was already trained.
RESUMABLE_CHANGES = {
    "schedule.epochs", "schedule.early_stop_patience", "data.eval_batch_size", "run.progress", "run.device", "run.name", "run.out_dir",
}


@dataclass
class TrainResult:
    """What a finished `train` call produced."""

    run_dir: Path
    model_path: Path
    best_epoch: int  # 1-based
    metrics: dict[str, Any]  # best validation figures, temperature, ECE before/after
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    model: nn.Module | None = None  # the best model as saved (temperature set), eval mode; rank 0 only

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "model_path": str(self.model_path), "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run, "seconds": round(self.seconds, 1), "stopped_early": self.stopped_early, **self.metrics,
        }


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- data


def load_training_data(cfg: TrainConfig, *, progress: bool = True) -> FaceDataset:
    """The dataset named by `data.path`: "synthetic", or anything `load_dataset` reads."""
    if cfg.data.path == "synthetic":
        from emolens.data.synthetic import make_synthetic_dataset

        return make_synthetic_dataset(cfg.data.synthetic_per_class, cfg.model.preprocess.image_size, seed=cfg.run.seed)
    from emolens.data import load_dataset
    from emolens.data.loading import detect_reader

    has_votes = bool(cfg.data.ferplus) or detect_reader(cfg.data.path).has_votes
    return load_dataset(
        cfg.data.path, image_size=cfg.model.preprocess.image_size, val_fraction=cfg.data.val_fraction,
        ferplus=cfg.data.ferplus or None, soft_labels=has_votes and cfg.loss.soft_labels, fer2013_share=cfg.data.fer2013_share,
        seed=cfg.run.seed, progress=progress,
    )


def split_train_val(ds: FaceDataset, cfg: TrainConfig) -> tuple[FaceDataset, FaceDataset]:
    """The train and val rows of `ds` this run uses (`emolens.data.splits.training_rows`)."""
    rows = training_rows(ds, val_fraction=cfg.data.val_fraction, train_fraction=cfg.data.train_fraction, seed=cfg.run.seed)
    return ds.subset(rows["train"]), ds.subset(rows["val"])


def _targets(ds: FaceDataset, use_soft: bool) -> torch.Tensor:
    """(N, C) float32 target distributions: soft labels when present and wanted, else one-hot."""
    if use_soft and ds.soft_labels is not None:
        t = torch.as_tensor(ds.soft_labels, dtype=torch.float32)
        return t / t.sum(1, keepdim=True).clamp_min(1e-12)
    return F.one_hot(torch.as_tensor(ds.labels, dtype=torch.int64), len(ds.classes)).float()


# ---------------------------------------------------------------------------- model pieces


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and norm scales: decaying them only hurts (they set scale, not capacity).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    o = cfg.optim
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=True)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, device: torch.device,
    info: dist_.DistInfo | None = None, memory_format: torch.memory_format = torch.contiguous_format,
) -> dict[str, float]:
    """Validation loss (plain cross-entropy), accuracy and macro-F1, summed over processes.

    Each process takes a contiguous shard (no padding, so every row counts once). Always in fp32,
    even when training runs under autocast: the shipped model runs in fp32, and the best epoch is
    picked by these figures (bf16 moved FER+ validation by up to 0.15 points, 5 faces in 3,370).
    """
    info = info or dist_.DistInfo()
    transform = create_transform(cfg.model.preprocess, is_training=False)
    C = len(model.emolens_config.labels)
    shard = np.array_split(np.arange(len(images)), info.world_size)[info.rank]
    cm = torch.zeros(C * C, dtype=torch.float64, device=device)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    bs = cfg.data.eval_batch_size
    for start in range(0, len(shard), bs):
        idx = torch.as_tensor(shard[start : start + bs])
        x = transform(images[idx].to(device))
        x = x.contiguous(memory_format=memory_format)
        y = labels[idx].to(device)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        cm += torch.bincount(y * C + logits.argmax(1), minlength=C * C).double()
    model.train(was_training)
    dist_.all_reduce_sum(cm)
    dist_.all_reduce_sum(loss_sum)
    cm = cm.view(C, C).cpu().numpy()
    total = cm.sum()
    return {
        "val_loss": float(loss_sum.item() / max(total, 1)),
        "val_acc": float(np.trace(cm) / max(total, 1)),
        "val_f1": macro_f1_from_confusion(cm),  # the one macro-F1 of emolens.evaluation.metrics
    }


# ---------------------------------------------------------------------------- run folder


def _fresh_run_dir(cfg: TrainConfig, info: dist_.DistInfo) -> Path:
    from emolens.paths import free_dir

    wanted = Path(cfg.run.out_dir) / (cfg.run.name or cfg.model.arch)
    path = free_dir(wanted)
    if path != wanted:
        dist_.log_main(info, f"emolens: {wanted} already exists and is never overwritten; writing this run to {path}")
    return path


def _read_model_file(spec: str, what: str) -> tuple[nn.Module, dict[str, Any]]:
    """Load an emolens model file named in the config (init weights, a teacher), and what a run
    records about it: enough to find it again."""
    from emolens.data.cache import hash_file
    from emolens.models.io import load_model, resolve_model_path

    try:
        path = resolve_model_path(spec)
        net = load_model(path)
    except ModelError as exc:
        raise ConfigError(f"{what} {exc}") from None
    config: ModelConfig = net.emolens_config  # type: ignore[assignment]
    metrics = {k: config.metrics[k] for k in ("val_acc", "val_f1") if k in config.metrics}
    record = {"path": str(path), "sha256": hash_file(path), "name": config.name, "metrics": metrics, "training": config.training.get("config", {})}
    return net, record


def _init_weights(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """Copy the weights of `cfg.model.init` into `model`; returns what to record about them."""
    source, record = _read_model_file(cfg.model.init, "model.init")
    src_cfg: ModelConfig = source.emolens_config  # type: ignore[assignment]
    if src_cfg.arch != cfg.model.arch:
        raise ConfigError(f"model.init {record['path']}: holds a {src_cfg.arch!r} model but model.arch is {cfg.model.arch!r}")
    if tuple(src_cfg.labels) != tuple(model.emolens_config.labels):  # type: ignore[union-attr]
        raise ConfigError(f"model.init {record['path']}: labels {list(src_cfg.labels)} differ from the data's {list(model.emolens_config.labels)}")  # type: ignore[union-attr]
    model.load_state_dict(source.state_dict())
    return record


def _load_teachers(
    cfg: TrainConfig, labels: tuple[str, ...], device: torch.device, memory_format: torch.memory_format,
) -> tuple[list[nn.Module], list[dict[str, Any]]]:
    """The frozen teachers of `distill.teachers`, on `device`, and what to record about them.

    A teacher must predict the same labels in the same order and see the same normalised input
    as the student: it is fed the student's own augmented batch. How a face is cut from a photo
    (face_margin, the per-detector framing) plays no part in that batch, so a shipped model whose
    file records its framing can teach.
    """
    teachers, records = [], []
    for spec in cfg.distill.teachers:
        net, record = _read_model_file(spec, "distill.teachers:")
        tcfg: ModelConfig = net.emolens_config  # type: ignore[assignment]
        if tuple(tcfg.labels) != labels:
            raise ConfigError(f"distill.teachers: {record['path']} predicts {list(tcfg.labels)}, the data has {list(labels)}")
        if _input_tensor(tcfg.preprocess) != _input_tensor(cfg.model.preprocess):
            raise ConfigError(
                f"distill.teachers: {record['path']} expects preprocessing {_input_tensor(tcfg.preprocess)}, "
                f"the student uses {_input_tensor(cfg.model.preprocess)}"
            )
        net.requires_grad_(False)
        teachers.append(net.to(device, memory_format=memory_format))
        records.append(record)
    return teachers, records


def _input_tensor(pre: PreprocessConfig) -> dict[str, float]:
    """The preprocessing fields that shape a training batch (not how photos are cropped)."""
    return {"image_size": pre.image_size, "input_size": pre.input_size, "mean": pre.mean, "std": pre.std}


def _device_name(device: torch.device) -> str:
    """The GPU's name (e.g. 'NVIDIA H100 80GB HBM3'), so a recorded training time says on what."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k != "kwargs":
            keys += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


# ---------------------------------------------------------------------------- train


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, dataset: FaceDataset | None = None) -> TrainResult:
    """Train a model as `config` says; with `resume`, continue the run in that folder exactly.

    `dataset` replaces reading `config.data.path` (tests and notebooks pass one in memory).
    Run under `torchrun` to train data-parallel. Returns a `TrainResult`; on rank 0 the run
    folder holds checkpoints, history, curves and `best.safetensors`.
    """
    info = dist_.from_env()
    ckpt = None
    if resume is not None:
        config, ckpt = _open_resume_point(Path(resume), config, info)
    cfg = config or TrainConfig()
    device = resolve_device(cfg.run.device, info)
    dist_.setup(info, device)
    try:
        return _train(cfg, info, device, dataset, ckpt)
    finally:
        dist_.teardown()


# ---------------------------------------------------------------------------- the steps of a run


@dataclass
class _ResumePoint:
    """What `checkpoints/last` of the run being resumed holds."""

    run_dir: Path
    model_state: dict[str, torch.Tensor]
    optim_tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]  # epoch, counters, schedule/stopper/scaler state, history, config, data, init, distill


def _open_resume_point(run_dir: Path, config: TrainConfig | None, info: dist_.DistInfo) -> tuple[TrainConfig, _ResumePoint]:
    """The run's last checkpoint, and the config to go on with: the saved one, or `config`
    when it changes only what may change on resume (RESUMABLE_CHANGES)."""
    ckpt_path = run_dir / "checkpoints" / "last.safetensors"
    if not ckpt_path.is_file():
        raise ConfigError(f"{run_dir}: cannot resume, no checkpoint at {ckpt_path}; is this a run folder made by `emolens train`?")
    model_state, optim_tensors, meta = read_checkpoint(ckpt_path)
    saved = load_config(base=TrainConfig.from_dict(meta["config"]))
    config = config if config is not None else saved
    changed = [k for k in _config_diff(saved.to_dict(), config.to_dict()) if k not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(
            f"{run_dir}: cannot resume with changed settings {changed}; only {sorted(RESUMABLE_CHANGES)} may change. "
            "Start a new run for other settings"
        )
    if meta["world_size"] != info.world_size:
        dist_.log_main(info, f"emolens: warning: run was trained with {meta['world_size']} processes, resuming with {info.world_size}; "
             "training continues but will not match an uninterrupted run")
    return config, _ResumePoint(run_dir, model_state, optim_tensors, meta)


def _run_folder(cfg: TrainConfig, info: dist_.DistInfo, device: torch.device, ckpt: _ResumePoint | None) -> tuple[TrainConfig, Path]:
    """The run folder (rank 0 picks a fresh one, everyone learns its name), and the config with
    run.name / run.out_dir set to it, saved there as config.yaml."""
    if ckpt is not None:
        run_dir = ckpt.run_dir
    else:
        run_dir = Path(dist_.broadcast_str(str(_fresh_run_dir(cfg, info)) if info.is_main else "", device))
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, name=run_dir.name, out_dir=str(run_dir.parent)))
    if info.is_main:
        cfg.save(run_dir / "config.yaml")
    return cfg, run_dir


@dataclass
class _Data:
    """The dataset and its train / val rows, in memory as tensors (uint8 faces)."""

    ds: FaceDataset
    train: FaceDataset
    val: FaceDataset
    train_images: torch.Tensor  # (N, S, S) uint8; each batch moves to the device before augmentation
    train_targets: torch.Tensor  # (N, C) float32 target distributions
    val_images: torch.Tensor  # (M, S, S) uint8
    val_labels: torch.Tensor  # (M,) int64


def _load_data(cfg: TrainConfig, info: dist_.DistInfo, dataset: FaceDataset | None, ckpt: _ResumePoint | None) -> _Data:
    # Rank 0 reads first and fills the decoded-data cache; the others then read the cache.
    if not info.is_main:
        dist_.barrier()
    ds = dataset if dataset is not None else load_training_data(cfg, progress=cfg.run.progress and info.is_main)
    if info.is_main:
        dist_.barrier()
    if ckpt is not None and ckpt.meta["data"]["source_sha256"] != ds.source_sha256:
        dist_.log_main(info, f"emolens: warning: the data differs from the data this run started on (sha256 {ds.source_sha256[:12]} "
             f"vs {ckpt.meta['data']['source_sha256'][:12]}); resume continues on the new data")
    train_ds, val_ds = split_train_val(ds, cfg)
    return _Data(
        ds=ds, train=train_ds, val=val_ds,
        train_images=torch.from_numpy(np.ascontiguousarray(train_ds.images)), train_targets=_targets(train_ds, cfg.loss.soft_labels),
        val_images=torch.from_numpy(np.ascontiguousarray(val_ds.images)), val_labels=torch.from_numpy(val_ds.labels.astype(np.int64)),
    )


@dataclass
class _Parts:
    """The model and everything that trains it."""

    model: nn.Module
    memory_format: torch.memory_format
    teachers: list[nn.Module]
    optimizer: torch.optim.Optimizer
    sampler: Any  # rows of this process per epoch (training.samplers)
    steps_per_epoch: int
    schedule: LRSchedule
    stopper: EarlyStopping
    loss_fn: nn.Module
    scaler: torch.amp.GradScaler
    transform: Any  # TrainTransform
    mix_gen: torch.Generator
    init_meta: dict[str, Any] | None  # where model.init's weights came from
    distill_meta: dict[str, Any] | None  # the teachers and the distillation settings


def _model_config(cfg: TrainConfig, data: _Data, run_dir: Path) -> ModelConfig:
    from emolens import __version__

    return ModelConfig(
        arch=cfg.model.arch, arch_kwargs=dict(cfg.model.kwargs), labels=tuple(data.ds.classes),
        preprocess=cfg.model.preprocess, name=run_dir.name, version=__version__,
    )


def _build_parts(
    cfg: TrainConfig, data: _Data, mcfg: ModelConfig, run_dir: Path, device: torch.device, amp: torch.dtype | None, info: dist_.DistInfo,
    ckpt: _ResumePoint | None,
) -> _Parts:
    """Model, teachers, optimiser, sampler, schedule, loss. The same seed on every rank gives
    the same initial weights."""
    _seed_everything(cfg.run.seed)
    try:
        model = build_model(mcfg)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs {cfg.model.kwargs} do not fit {cfg.model.arch!r}: {exc}") from None
    # A resumed run keeps what its first start recorded; its checkpoint already holds the weights.
    init_meta = ckpt.meta.get("init") if ckpt is not None else (_init_weights(model, cfg) if cfg.model.init else None)
    memory_format = torch.channels_last if resolve_channels_last(cfg.run.channels_last, device) else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    teachers, teacher_records = _load_teachers(cfg, tuple(data.ds.classes), device, memory_format)
    if ckpt is not None and ckpt.meta.get("distill") and [t["sha256"] for t in ckpt.meta["distill"]["teachers"]] != [t["sha256"] for t in teacher_records]:
        raise ConfigError(f"{run_dir}: distill.teachers changed since this run started; resume needs the same teacher files")
    distill_meta = {
        "teachers": teacher_records, "alpha": cfg.distill.alpha, "temperature": cfg.distill.temperature, "whole_teacher": cfg.distill.whole_teacher,
    } if teachers else None
    optimizer = _make_optimizer(model, cfg)
    sampler = make_sampler(data.train.labels, cfg.imbalance.strategy, num_replicas=info.world_size, rank=info.rank, seed=cfg.run.seed)
    per_rank, bs = len(sampler), cfg.data.batch_size  # type: ignore[arg-type]
    steps_per_epoch = per_rank // bs if per_rank >= bs else 1  # drop the ragged last batch: BatchNorm dislikes tiny ones
    if cfg.schedule.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.schedule.max_steps_per_epoch)
    counts = np.bincount(data.train.labels, minlength=len(data.ds.classes))
    return _Parts(
        model=model, memory_format=memory_format, teachers=teachers, optimizer=optimizer, sampler=sampler, steps_per_epoch=steps_per_epoch,
        schedule=LRSchedule(cfg.schedule, cfg.optim.lr, steps_per_epoch),
        stopper=EarlyStopping(cfg.schedule.monitor, cfg.schedule.early_stop_patience, cfg.schedule.min_delta),
        loss_fn=make_loss(cfg.loss, cfg.imbalance, counts).to(device),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        transform=create_transform(cfg.model.preprocess, cfg.aug, is_training=True), mix_gen=torch.Generator(),
        init_meta=init_meta, distill_meta=distill_meta,
    )


@dataclass
class _Progress:
    """Where the run stands; all of it is in every `last` checkpoint."""

    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0  # epochs done
    global_step: int = 0
    seconds_before: float = 0.0  # training time of earlier sessions of this run
    best_ckpt: dict[str, Any] = field(default_factory=lambda: {"epoch": -1})  # which epoch and weights checkpoints/best holds


def _restore(parts: _Parts, ckpt: _ResumePoint, cfg: TrainConfig, info: dist_.DistInfo) -> _Progress:
    """Put the model, optimiser, schedule, stopper and scaler back as `last` saved them."""
    meta = ckpt.meta
    try:
        parts.model.load_state_dict(ckpt.model_state)
    except RuntimeError as exc:
        raise ModelError(f"{ckpt.run_dir}: checkpoint does not fit the model {cfg.model.arch!r}: {exc}") from None
    parts.optimizer.load_state_dict(unflatten_optimizer(ckpt.optim_tensors, meta["optimizer"], parts.optimizer.state_dict()))
    parts.schedule.load_state_dict(meta["schedule"])
    stopper = parts.stopper
    stopper.load_state_dict(meta["early_stopping"])
    if meta.get("scaler"):
        parts.scaler.load_state_dict(meta["scaler"])
    progress = _Progress(list(meta["history"]), int(meta["epoch"]), int(meta["global_step"]), float(meta["seconds"]), best_record(meta))
    stopper.patience = cfg.schedule.early_stop_patience  # may have been changed on resume
    run_dir, done = ckpt.run_dir, progress.epoch
    if stopper.stop and cfg.schedule.early_stop_patience and stopper.bad_epochs >= cfg.schedule.early_stop_patience:
        dist_.log_main(info, f"emolens: {run_dir} stopped early at epoch {done}; raise schedule.early_stop_patience to continue")
    elif done >= cfg.schedule.epochs:
        dist_.log_main(info, f"emolens: {run_dir} already trained {done} of {cfg.schedule.epochs} epochs; pass --epochs N to train longer")
    else:
        stopper.stop = False
    dist_.log_main(info, f"emolens: resuming {run_dir} after epoch {done}")
    return progress


def _model_record(
    cfg: TrainConfig, data: _Data, parts: _Parts, mcfg: ModelConfig, device: torch.device, amp: torch.dtype | None, info: dist_.DistInfo,
) -> ModelRecord:
    """What every model file of the run records beside the weights: config, data, device, versions."""
    from emolens import __version__

    data_meta = {"path": cfg.data.path, "source": data.ds.source, "source_sha256": data.ds.source_sha256, "n_train": len(data.train), "n_val": len(data.val)}
    if cfg.data.ferplus:  # the labels come from a second file: its content is part of the data
        from emolens.data.cache import hash_file

        data_meta["ferplus_sha256"] = hash_file(Path(cfg.data.ferplus))
    return ModelRecord(mcfg, {
        "config": cfg.to_dict(), "data": data_meta, "init": parts.init_meta, "distill": parts.distill_meta, "device": str(device),
        "device_name": _device_name(device), "world_size": info.world_size,
        "amp": str(amp).replace("torch.", "") if amp else "off", "emolens_version": __version__, "torch_version": torch.__version__,
    })


def _epoch_row(epoch: int, lr: float, stats: torch.Tensor, val: dict[str, float], *, seconds: float, train_seconds: float) -> dict[str, Any]:
    """One epoch's line of history.csv. stats: the epoch's summed loss, correct count and image count."""
    return {
        "epoch": epoch, "lr": lr,
        "train_loss": float(stats[0] / stats[2]), "train_acc": float(stats[1] / stats[2]), **val,
        "seconds": round(seconds, 3), "images_per_s": round(float(stats[2]) / max(train_seconds, 1e-9), 1),
    }


def _epoch_line(row: dict[str, Any], epochs: int, is_best: bool) -> str:
    """The log line of one epoch's row."""
    return (
        f"epoch {row['epoch']}/{epochs}  lr {row['lr']:.2e}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} f1 {row['val_f1']:.4f}  "
        f"{row['seconds']:.1f}s {row['images_per_s']:.0f} img/s" + ("  *best*" if is_best else "")
    )


def _train(cfg: TrainConfig, info: dist_.DistInfo, device: torch.device, dataset: FaceDataset | None, ckpt: _ResumePoint | None) -> TrainResult:
    amp = resolve_amp(cfg.run.amp, device)
    cfg, run_dir = _run_folder(cfg, info, device, ckpt)
    data = _load_data(cfg, info, dataset, ckpt)
    dist_.log_main(info, f"emolens: {len(data.train)} train / {len(data.val)} val faces from {data.ds.source or cfg.data.path}; "
         f"device {device}, {info.world_size} process(es), amp {amp or 'off'}; run folder {run_dir}")
    mcfg = _model_config(cfg, data, run_dir)
    parts = _build_parts(cfg, data, mcfg, run_dir, device, amp, info, ckpt)
    progress = _restore(parts, ckpt, cfg, info) if ckpt is not None else _Progress()
    net: nn.Module = parts.model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(parts.model, device_ids=[device.index] if device.type == "cuda" else None)
    record = _model_record(cfg, data, parts, mcfg, device, amp, info)
    best_path = run_dir / "best.safetensors"
    stopper = parts.stopper
    if ckpt is not None and info.is_main:
        repair_run(run_dir, ckpt.meta, record, progress.history, stopper, cfg.run.plots, info)

    t_start = time.perf_counter()
    while progress.epoch < cfg.schedule.epochs and not stopper.stop:
        t0 = time.perf_counter()
        lr, stats = _train_epoch(net, parts, data, cfg, progress, device, amp, info)
        train_secs = time.perf_counter() - t0
        dist_.broadcast_buffers(parts.model)  # every process scores (and rank 0 saves) the same model
        val = evaluate(parts.model, data.val_images, data.val_labels, cfg, device, info, parts.memory_format)
        progress.epoch += 1
        value = val[cfg.schedule.monitor]
        is_best = stopper.update(value, progress.epoch)
        parts.schedule.epoch_end(value)
        row = _epoch_row(progress.epoch, lr, stats, val, seconds=time.perf_counter() - t0, train_seconds=train_secs)
        progress.history.append(row)
        dist_.log_main(info, _epoch_line(row, cfg.schedule.epochs, is_best))
        if info.is_main:
            seconds = progress.seconds_before + time.perf_counter() - t_start
            _write_epoch(run_dir, cfg, parts, record, progress, is_best, seconds, info)
        # Rank 0 decides, so every process leaves the loop together.
        stopper.stop = dist_.broadcast_flag(stopper.stop, device)
        if stopper.stop:
            dist_.log_main(info, f"emolens: early stop: {cfg.schedule.monitor} has not improved for {stopper.bad_epochs} epochs")
        dist_.barrier()

    seconds = progress.seconds_before + time.perf_counter() - t_start
    metrics: dict[str, Any] = {}
    best_model = None
    if info.is_main:
        best_model, metrics = finalize(record, best_path, progress.history, stopper, seconds, data.val, device, cfg.data.eval_batch_size, info)
    dist_.barrier()
    return TrainResult(
        run_dir=run_dir, model_path=best_path, best_epoch=stopper.best_epoch, metrics=metrics, history=progress.history,
        epochs_run=progress.epoch, seconds=seconds, stopped_early=stopper.stop, model=best_model,
    )


def _train_epoch(
    net: nn.Module, parts: _Parts, data: _Data, cfg: TrainConfig, progress: _Progress, device: torch.device, amp: torch.dtype | None,
    info: dist_.DistInfo,
) -> tuple[float, torch.Tensor]:
    """One epoch of steps; returns the last learning rate and (loss sum, correct, seen) summed
    over processes. Advances `progress.global_step`."""
    # Every random stream restarts from (seed, epoch, rank): resume needs no RNG state.
    eseed = _epoch_seed(cfg.run.seed, progress.epoch, info.rank)
    _seed_everything(eseed)
    parts.transform.reseed(eseed)
    parts.mix_gen.manual_seed(eseed ^ 0x5EED)
    rows = epoch_indices(parts.sampler, progress.epoch)
    t0 = time.perf_counter()
    net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bar = None
    if info.is_main and cfg.run.progress:
        from tqdm import tqdm

        bar = tqdm(total=parts.steps_per_epoch, desc=f"epoch {progress.epoch + 1}/{cfg.schedule.epochs}", leave=False, dynamic_ncols=True, file=sys.stderr)
    bs = cfg.data.batch_size
    lr = parts.schedule.lr_at(progress.global_step)
    for b in range(parts.steps_per_epoch):
        idx = torch.from_numpy(rows[b * bs : (b + 1) * bs])
        lr = parts.schedule.lr_at(progress.global_step)
        for group in parts.optimizer.param_groups:
            group["lr"] = lr
        x, whole = parts.transform.views(data.train_images[idx].to(device, non_blocking=True))  # (B, 1, I, I) each
        target = data.train_targets[idx].to(device, non_blocking=True)  # (B, C)
        logits, target, loss = _step(net, parts, cfg, x, target, amp, whole if cfg.distill.whole_teacher else None)
        progress.global_step += 1
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.detach().argmax(1) == target.argmax(1)).sum()
        seen += len(idx)
        if bar is not None:
            bar.update(1)
            if b % 10 == 0 or b == parts.steps_per_epoch - 1:  # .item() syncs the GPU: not every step
                rate = seen * info.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}", img_s=f"{rate:.0f}")
    if bar is not None:
        bar.close()
    stats = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), dtype=torch.float64, device=device)])
    dist_.all_reduce_sum(stats)
    # Checked once per epoch on the reduced sum (a per-step check would sync the GPU every
    # step), so every process sees the same value and stops together.
    if not torch.isfinite(stats[0]):
        raise ModelError(f"training loss became {stats[0].item()} in epoch {progress.epoch + 1}; lower optim.lr or set optim.grad_clip")
    return lr, stats


def _step(
    net: nn.Module, parts: _Parts, cfg: TrainConfig, x: torch.Tensor, target: torch.Tensor, amp: torch.dtype | None,
    teacher_x: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step on the augmented batch x (B, 1, I, I) and targets (B, C): mix, forward
    (through the teachers too: on teacher_x where given, the faces before degradation, else on
    x), backward, clip, step. Returns the logits (B, C), the targets as trained (mixed when
    mixing is on) and the loss."""
    x, target = mix_batch(x, target, cfg.aug, parts.mix_gen)
    x = x.contiguous(memory_format=parts.memory_format)
    teacher_x = x if teacher_x is None else teacher_x.contiguous(memory_format=parts.memory_format)
    device_type = x.device.type
    with torch.autocast(device_type, dtype=amp or torch.float32, enabled=amp is not None):
        logits = net(x)
        if parts.teachers:
            with torch.no_grad():
                teacher_logits = [t(teacher_x) for t in parts.teachers]
    loss = parts.loss_fn(logits, target)
    if parts.teachers:
        a = cfg.distill.alpha
        loss = (1.0 - a) * loss + a * distillation_loss(logits, teacher_logits, cfg.distill.temperature)
    optimizer, scaler = parts.optimizer, parts.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.optim.grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return logits, target, loss


def _write_epoch(
    run_dir: Path, cfg: TrainConfig, parts: _Parts, record: ModelRecord, progress: _Progress, is_best: bool, seconds: float,
    info: dist_.DistInfo,
) -> None:
    """Rank 0's files of one epoch: `last` (the commit point), then `best`, the model file, the
    history and the curves when the epoch is the best."""
    from emolens import __version__

    meta = {
        "epoch": progress.epoch, "global_step": progress.global_step, "seconds": seconds, "world_size": info.world_size,
        "config": cfg.to_dict(), "data": record.static["data"], "schedule": parts.schedule.state_dict(),
        "early_stopping": parts.stopper.state_dict(), "scaler": parts.scaler.state_dict() if parts.scaler.is_enabled() else None,
        "history": progress.history, "emolens_version": __version__, "init": parts.init_meta, "distill": parts.distill_meta,
    }
    state = {k: v.detach().cpu() for k, v in parts.model.state_dict().items()}  # one copy off the device, hashed and saved
    sha = weights_sha256(state)
    if is_best:
        progress.best_ckpt = {"epoch": progress.epoch, "weights_sha256": sha}
    blob, text = encode_checkpoint(state, parts.optimizer.state_dict(), {**meta, "best": progress.best_ckpt}, sha)
    ckpt_dir = run_dir / "checkpoints"
    # `last` first: it commits the epoch. Written after it, `best` can only lag behind
    # what `last` records (never lead it), and `last` then holds the weights it lacks;
    # written before it, a kill would leave `best` holding an epoch that resume trains again.
    write_checkpoint(ckpt_dir / "last.safetensors", blob, text)
    if is_best:
        write_checkpoint(ckpt_dir / "best.safetensors", blob, text)
        save_best_model(parts.model, record, run_dir / "best.safetensors", progress.history, parts.stopper, seconds, sha)
    write_history(run_dir, progress.history)
    if cfg.run.plots:
        plot_curves(run_dir, progress.history)
