"""`TrainConfig`: every training setting, typed, with its default and why.

Loaded from YAML or TOML, then `section.key=value` overrides (the CLI's `--set`). Unknown keys
are rejected with close-match suggestions; values are checked against their types and
choices where they enter, so a typo fails before any data is read. The resolved config is
saved as `config.yaml` in the run folder and inside the model file.

Example::

    cfg = load_config("configs/resnet_fer_small.yaml", ["optim.lr=3e-4", "schedule.epochs=5"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from emolens.checks import check_choice, check_range
from emolens.data.splits import VAL_FRACTION
from emolens.errors import ConfigError
from emolens.preprocessing import PreprocessConfig
from emolens.transforms import AugConfig  # the `aug` section is the training transform's own config

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
MONITORS = ("val_acc", "val_f1", "val_loss")
IMBALANCE = ("none", "class_weights", "focal", "oversample", "undersample")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class DataConfig:
    path: str = "synthetic"  # anything `emolens.data.load_dataset` reads, or "synthetic"
    ferplus: str = ""  # FER+ fer2013new.csv: relabels fer2013.csv or the Kaggle download (vote shares with loss.soft_labels)
    fer2013_share: float = 0.0  # with ferplus on the Kaggle download: share of each face's FER-2013 label in its soft target
    batch_size: int = 64  # per process; FER recipes use 64-128
    eval_batch_size: int = 256  # inference only, so larger is free
    train_fraction: float = 1.0  # a seeded, stratified share of train: for quick checks
    val_fraction: float = VAL_FRACTION  # carved from train (stratified) only when the data has no val split
    synthetic_per_class: int = 300  # size of the synthetic set when path is "synthetic"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"data.batch_size and data.eval_batch_size must be >= 1, got {self.batch_size}, {self.eval_batch_size}")
        check_range("data", "train_fraction", self.train_fraction, 1e-6, 1.0)
        check_range("data", "val_fraction", self.val_fraction, 0.0, 0.5)
        check_range("data", "fer2013_share", self.fer2013_share, 0.0, 1.0)
        if self.synthetic_per_class < 3:
            raise ConfigError(f"data.synthetic_per_class must be >= 3, got {self.synthetic_per_class}")


@dataclass
class ModelSection:
    arch: str = "resnet_fer_small"  # see `emolens.models.list_models()`; small enough for CPU
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra arguments of the architecture, e.g. {dropout: 0.4}
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)  # travels with the weights
    init: str = ""  # an emolens model file (or run folder) to start from instead of random weights: a second training stage


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd (SGD always uses Nesterov momentum, as the VGG-FER paper)
    lr: float = 1e-3  # peak learning rate, reached after warm-up
    weight_decay: float = 0.05  # decoupled for AdamW; L2 for SGD (use ~5e-4 there)
    momentum: float = 0.9  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only
    grad_clip: float = 0.0  # max global grad norm; 0 = off

    def __post_init__(self) -> None:
        check_choice("optim", "name", self.name, OPTIMIZERS)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("optim.weight_decay and optim.grad_clip must be >= 0")
        check_range("optim", "momentum", self.momentum, 0.0, 0.999)


@dataclass
class ScheduleConfig:
    epochs: int = 30  # full passes over the (sampled) training set
    name: str = "cosine"  # cosine | plateau | constant, each after a linear warm-up
    warmup_epochs: float = 1.0  # linear warm-up from lr/100, per step; fractions allowed
    min_lr_ratio: float = 0.01  # cosine floor, as a share of optim.lr
    plateau_factor: float = 0.5  # plateau: multiply lr by this when `monitor` stalls
    plateau_patience: int = 3  # plateau: epochs without improvement before cutting lr
    monitor: str = "val_acc"  # val_acc | val_f1 | val_loss: picks `best`, drives plateau and early stopping
    min_delta: float = 0.0  # an improvement smaller than this does not count
    early_stop_patience: int = 10  # stop after this many epochs without improvement; 0 = never
    max_steps_per_epoch: int = 0  # cap on optimiser steps per epoch for quick checks; 0 = all

    def __post_init__(self) -> None:
        check_choice("schedule", "name", self.name, SCHEDULES)
        check_choice("schedule", "monitor", self.monitor, MONITORS)
        if self.epochs < 1:
            raise ConfigError(f"schedule.epochs must be >= 1, got {self.epochs}")
        if self.warmup_epochs < 0 or self.early_stop_patience < 0 or self.plateau_patience < 0 or self.max_steps_per_epoch < 0:
            raise ConfigError("schedule.warmup_epochs, *_patience and max_steps_per_epoch must be >= 0")
        check_range("schedule", "min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("schedule", "plateau_factor", self.plateau_factor, 1e-6, 1.0)


@dataclass
class LossConfig:
    label_smoothing: float = 0.1  # FER labels are noisy (~65% human agreement), so do not trust them fully
    soft_labels: bool = True  # train on the dataset's label distributions (FER+ votes) when it has them

    def __post_init__(self) -> None:
        check_range("loss", "label_smoothing", self.label_smoothing, 0.0, 0.99)


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): the student also learns the teachers' predictions.

    Each batch, after augmentation and mixing, goes through every teacher too; the student is
    pulled towards the mean of their softened distributions. An ensemble of large teachers
    carries knowledge a small network cannot find on its own from noisy FER labels.
    """

    teachers: list[str] = field(default_factory=list)  # emolens model files (or run folders); empty = no distillation
    alpha: float = 0.5  # share of the loss on the teachers; the rest stays on the labels
    temperature: float = 2.0  # softens teacher and student alike; >1 shows the teachers' second choices
    # The teachers see each face warped and lit but before the degradations and erasing that the
    # student sees (TrainTransform.views): the student learns to read a blurred, noisy, dark,
    # compressed or half-hidden face as the teachers read it whole, not as they misread it.
    whole_teacher: bool = False

    def __post_init__(self) -> None:
        check_range("distill", "alpha", self.alpha, 0.0, 1.0)
        check_range("distill", "temperature", self.temperature, 0.05, 20.0)
        if self.whole_teacher and not self.teachers:
            raise ConfigError("distill.whole_teacher needs distill.teachers")


@dataclass
class ImbalanceConfig:
    strategy: str = "none"  # none | class_weights | focal | oversample | undersample
    weight_power: float = 1.0  # class_weights/focal: weight = (balanced weight) ** power; 0.5 is gentler
    focal_gamma: float = 2.0  # focal: down-weights easy examples by (1 - p) ** gamma

    def __post_init__(self) -> None:
        check_choice("imbalance", "strategy", self.strategy, IMBALANCE)
        check_range("imbalance", "weight_power", self.weight_power, 0.0, 2.0)
        check_range("imbalance", "focal_gamma", self.focal_gamma, 0.0, 10.0)


@dataclass
class RunConfig:
    name: str = ""  # run folder runs/<name>; default: the architecture name
    out_dir: str = "runs"  # parent folder of all runs
    seed: int = 0  # seeds every random stream; same seed + same process count = same run on CPU
    device: str = "auto"  # auto (CUDA if available, else CPU) | cpu | cuda | cuda:1
    amp: str = "auto"  # auto: AMP on CUDA; bf16 on CPU only with AMX (runtime.devices.cpu_has_native_bf16), else fp32
    channels_last: bool | None = None  # null = auto (runtime.devices.resolve_channels_last): on for CUDA and AVX-512 CPUs, off on AVX2-only ones
    progress: bool = True  # tqdm bar (rank 0 only)
    plots: bool = True  # redraw curves.png every epoch (matplotlib; about 0.5 s per epoch on a slow CPU)

    def __post_init__(self) -> None:
        check_choice("run", "amp", self.amp, AMP_MODES)
        if self.name and (Path(self.name).name != self.name or self.name in (".", "..")):
            raise ConfigError(f"run.name must be a plain folder name, got {self.name!r}")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.distill.whole_teacher and (self.aug.mixup_alpha or self.aug.cutmix_alpha):
            raise ConfigError("distill.whole_teacher leaves the teachers' faces unmixed: turn aug.mixup_alpha and aug.cutmix_alpha off")

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _build(cls, d, "")

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write the resolved config as YAML (atomically; callers pick a fresh path)."""
        from emolens.training.checkpoint import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, self.to_yaml().encode())
        return path


def _plain(obj: Any) -> Any:
    # YAML/JSON-friendly: tuples become lists.
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        t = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(t):
            keys += _all_keys(t, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown_key(key: str) -> ConfigError:
    keys = _all_keys(TrainConfig)
    close = get_close_matches(key, keys, n=3, cutoff=0.6)
    if not close:  # a right key in the wrong section: match on the last part
        tail = key.rsplit(".", 1)[-1]
        close = [k for k in keys if k.rsplit(".", 1)[-1] == tail] or get_close_matches(tail, keys, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}.{hint} Run `emolens train --show-config` to list every key")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert) a value read from YAML/TOML/CLI against the field's type."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is list:
        (arg,) = typing.get_args(tp)
        if isinstance(value, str | int | float):  # a single value where a list is expected
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    return value


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<top>'} must be a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
        if key not in names:
            raise _unknown_key(f"{prefix}{key}")
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config section {prefix.rstrip('.') or '<top>'}: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file -> nested dict, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unknown config format {path.suffix!r}; expected .yaml, .yml or .toml")
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data:, model:, ...), got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=3e-4' -> (['optim', 'lr'], 0.0003). Values are read as YAML: 1e-3, true, [0.9, 1.1]."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.lr=3e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key; expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # an unquoted string YAML cannot read is taken as is
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Merge `section.key=value` strings into a nested dict (a copy); keys are checked on build."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *, base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `base`) <- the file at `path` <- `overrides`, checked and typed."""
    data = base.to_dict() if base is not None else {}
    if path is not None:
        data = _merge(data, read_config_file(path))
    data = apply_overrides(data, overrides)
    return TrainConfig.from_dict(data)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "kwargs" else v
    return out


def resolve_config(
    config: str | Path | None = None,
    *,
    data: str | None = None,
    model: str | None = None,
    epochs: int | None = None,
    name: str | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
) -> TrainConfig:
    """The config `emolens train` runs: defaults <- CONFIG file <- the shortcut options <- `--set`.

    With `resume`, the run folder's own `config.yaml` replaces defaults and file.
    Shortcuts: data -> data.path, model -> model.arch, epochs -> schedule.epochs, name -> run.name.
    """
    shortcuts = [f"{k}={v}" for k, v in (("data.path", data), ("model.arch", model), ("schedule.epochs", epochs), ("run.name", name)) if v is not None]
    # Shortcut values are literal strings/ints: quote strings so YAML does not reinterpret "1e3" or "yes".
    shortcuts = [s if s.startswith("schedule.epochs=") else s.split("=", 1)[0] + "=" + _yaml_quote(s.split("=", 1)[1]) for s in shortcuts]
    if resume is not None:
        if config is not None:
            raise ConfigError("pass either a CONFIG file or --resume RUN_DIR, not both: a resumed run keeps its own config.yaml")
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{resume}: cannot resume, no config.yaml; is this a run folder made by `emolens train`?")
        return load_config(saved, [*shortcuts, *(overrides or [])])
    return load_config(config, [*shortcuts, *(overrides or [])])


def _yaml_quote(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a valid YAML scalar
