"""Model configs and where model files are: everything about a model file that needs no PyTorch.

`ModelConfig` is what a model file carries about itself (architecture, labels, preprocessing,
temperature, training record); `config_from_json` reads and fully checks it, for safetensors
files (`emolens.models.io`) and exported ONNX/TFLite files (`emolens.export.metadata`) alike.
Kept free of torch so that an exported model runs, and a CLI command starts, without importing it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError, ModelError
from emolens.labels import EMOTIONS
from emolens.models.args import check_arch_kwargs
from emolens.preprocessing import PreprocessConfig

FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "default"
# A model file is read whole into memory: 1 GiB holds 268M fp32 parameters, 25 times the
# largest emolens architecture, and stops a file (or a link to /dev/zero) from exhausting memory.
MAX_MODEL_BYTES = 1 << 30
MAX_CONFIG_CHARS = 1 << 20  # the config JSON; a trained model's is about 4 KB


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and feed it correctly."""

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = EMOTIONS
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    temperature: float = 1.0  # softmax(logits / T) gives calibrated probabilities; fit on validation
    name: str = ""
    version: str = ""
    training: dict[str, Any] = field(default_factory=dict)  # resolved train config, data sha256, time
    metrics: dict[str, Any] = field(default_factory=dict)  # validation / test figures
    license: str = "MIT"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "model config") -> ModelConfig:
        """A config from JSON (a model file's metadata), every field checked before anything is built.

        Raises ModelError naming `source`, the field, what was found and what was expected.
        """
        if not isinstance(d, dict):
            raise ModelError(f"{source}: the emolens config must be a JSON object, found {_kind(d)}; the file is damaged or not from emolens.save_model")
        d = dict(d)
        version = d.pop("format_version", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ModelError(f"{source}: format_version: expected a positive integer, found {_show(version)}")
        if version > FORMAT_VERSION:
            raise ModelError(f"{source}: model file format {version} is newer than this emolens understands ({FORMAT_VERSION}); upgrade emolens")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"{source}: model config has unknown keys {sorted(map(str, unknown))}; expected some of {sorted(known)}")
        if "arch" not in d:
            raise ModelError(f"{source}: arch: missing; the config must name the architecture its weights belong to")
        d["arch"] = _text(d["arch"], f"{source}: arch", limit=200, empty=False)
        d["arch_kwargs"] = check_arch_kwargs(d["arch"], d.get("arch_kwargs", {}), source)
        d["labels"] = _labels(d.get("labels", list(EMOTIONS)), source)
        try:
            d["preprocess"] = PreprocessConfig.validated(d.get("preprocess", {}), f"{source}: preprocess")
        except ConfigError as exc:
            raise ModelError(str(exc)) from None
        d["temperature"] = _temperature(d.get("temperature", 1.0), source)
        for key in ("name", "version", "license"):
            if key in d:
                d[key] = _text(d[key], f"{source}: {key}", limit=1000)
        for key in ("training", "metrics"):
            if key in d:
                d[key] = _record(d[key], f"{source}: {key}")
        return cls(**d)


# The temperature divides the logits: 0 or NaN turns every score into NaN, which JSON cannot
# carry, and a tiny one overflows float32. [0.01, 100] is the range calibration searches
# (emolens.evaluation.calibration), so every fitted temperature loads.
TEMPERATURE_RANGE = (0.01, 100.0)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any, where: str, *, limit: int, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not empty and not value):
        raise ModelError(f"{where}: expected a{' non-empty' if not empty else ''} string of at most {limit} characters, found {_show(value)}")
    return value


def _labels(value: Any, source: str) -> tuple[str, ...]:
    """The label names: known emotions, each once, at least two (a classifier needs a choice)."""
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= len(EMOTIONS):
        raise ModelError(f"{source}: labels: expected a list of 2 to {len(EMOTIONS)} emotion names, found {_show(value)}")
    for name in value:
        if name not in EMOTIONS:
            raise ModelError(f"{source}: labels: {_show(name)} is not an emotion; expected names from {', '.join(EMOTIONS)}")
    if len(set(value)) != len(value):
        twice = sorted({n for n in value if list(value).count(n) > 1})
        raise ModelError(f"{source}: labels: {', '.join(twice)} listed more than once; each class must have one name")
    return tuple(value)


def _temperature(value: Any, source: str) -> float:
    lo, hi = TEMPERATURE_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not lo <= value <= hi:
        raise ModelError(f"{source}: temperature: expected a finite number in [{lo:g}, {hi:g}], found {_show(value)}")
    return float(value)


def _record(value: Any, where: str) -> dict[str, Any]:
    """A free-form record (training settings, metrics): a JSON object whose NaN/inf become null.

    They are shown, not computed with, so a NaN metric is no reason to refuse the model; but it
    would make the API's JSON invalid, so it goes here.
    """
    if not isinstance(value, dict):
        raise ModelError(f"{where}: expected a JSON object, found {_kind(value)}")
    return _finite(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def config_from_json(text: Any, source: str) -> ModelConfig:
    """The ModelConfig in a model file's metadata string (safetensors or ONNX), fully checked."""
    if not isinstance(text, str) or len(text) > MAX_CONFIG_CHARS:
        size = f"{len(text)} characters" if isinstance(text, str) else type(text).__name__
        raise ModelError(f"{source}: emolens_config metadata: expected a JSON text of at most {MAX_CONFIG_CHARS} characters, found {size}")
    try:
        return ModelConfig.from_dict(json.loads(text), source)
    except ValueError as exc:  # JSONDecodeError
        raise ModelError(f"{source}: emolens_config metadata is not valid JSON ({exc}); the file is damaged or not from emolens.save_model") from None
    except RecursionError:
        raise ModelError(f"{source}: emolens_config metadata is nested too deeply to be an emolens config") from None


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return shipped_model_path(DEFAULT_MODEL_NAME)


# Models that ship inside the package, by the name users pass as `model=`.
SHIPPED_MODELS = {
    DEFAULT_MODEL_NAME: "FER+ labels, trained for photos and video (the default)",
    "fer2013": "model 0.3.0, trained on FER-2013's own labels (72.64% PrivateTest)",
}


def shipped_model_path(name: str) -> Path:
    return Path(str(resources.files("emolens") / "weights" / f"{name}.safetensors"))


def resolve_model_path(model: str | Path | None) -> Path:
    """None or a shipped name ('default', 'fer2013') -> that shipped model; a folder -> its
    best.safetensors; else the file."""
    name = DEFAULT_MODEL_NAME if model is None else str(model)
    if name in SHIPPED_MODELS and not Path(name).exists():
        path = shipped_model_path(name)
        if not path.exists():
            raise ModelError(f"the shipped model {name!r} is not installed at {path}; pass a model file trained with `emolens train`")
        return path
    path = Path(model)
    if path.is_dir():
        for cand in (path / "best.safetensors", path / "model.safetensors"):
            if cand.exists():
                return cand
        raise ModelError(f"{path}: folder holds no best.safetensors or model.safetensors")
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    return path
