"""Model files: safetensors weights with the model's config as JSON, never a pickle.

A model file `NAME.safetensors` carries its `ModelConfig` in the safetensors header metadata,
and a readable copy is written beside it as `NAME.json`. Loading rebuilds the architecture
from the config (`create_model(arch, **arch_kwargs)`) and attaches the config as
`model.emolens_config`, so inference never guesses input size, normalisation or label order.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from emolens.errors import ModelError
from emolens.labels import EMOTIONS
from emolens.models.registry import create_model
from emolens.preprocessing import PreprocessConfig

FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "default"


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
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        version = d.pop("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ModelError(f"model file format {version} is newer than this emolens understands ({FORMAT_VERSION}); upgrade emolens")
        d["labels"] = tuple(d.get("labels", EMOTIONS))
        d["preprocess"] = PreprocessConfig.from_dict(d.get("preprocess", {}))
        d["arch_kwargs"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("arch_kwargs", {}).items()}
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"model config has unknown keys {sorted(unknown)}")
        return cls(**d)


def build_model(config: ModelConfig) -> nn.Module:
    """An untrained model of the architecture `config` describes, with the config attached."""
    model = create_model(config.arch, num_classes=len(config.labels), input_size=config.preprocess.input_size, **config.arch_kwargs)
    model.emolens_config = config
    return model


def add_class_bias(model: nn.Module, bias: Any) -> nn.Module:
    """Add per-class offsets to the logits by folding them into the classifier's bias, in place.

    Folding keeps every inference path (PyTorch, ONNX, int8) identical with no extra step.
    The classifier is the last nn.Linear whose outputs are the classes.
    """
    n_classes = len(model.emolens_config.labels) if hasattr(model, "emolens_config") else None
    offsets = torch.as_tensor(np.asarray(bias, dtype=np.float32))
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == (n_classes or offsets.numel())]
    if not heads or heads[-1].bias is None:
        raise ModelError("add_class_bias needs a final nn.Linear with a bias and one output per class")
    head = heads[-1]
    if offsets.shape != head.bias.shape:
        raise ModelError(f"class bias must have {head.out_features} values, got shape {tuple(offsets.shape)}")
    with torch.no_grad():
        head.bias.add_(offsets.to(head.bias))
    return model


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to `path.tmp`, fsync, rename over `path`, fsync the folder: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable; not possible on every platform
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def save_model(model: nn.Module, path: str | Path, config: ModelConfig | None = None, *, half: bool = False) -> Path:
    """Write `path` (.safetensors) and its `.json` twin atomically. Returns the weights path.

    half=True stores floating tensors as fp16, halving the file; they are cast back on load.
    """
    from safetensors.torch import save

    config = config or getattr(model, "emolens_config", None)
    if config is None:
        raise ModelError("save_model needs a ModelConfig: pass config= or attach model.emolens_config")
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        state[k] = v.half() if half and v.is_floating_point() else v
    meta_json = json.dumps(config.to_dict(), sort_keys=True)
    atomic_write_bytes(path, save(state, metadata={"emolens_config": meta_json}))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode())
    return path


def read_model_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a .safetensors model file (no weights are read)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    if "emolens_config" not in meta:
        raise ModelError(f"{path}: safetensors file carries no emolens config; was it saved by emolens.save_model?")
    return ModelConfig.from_dict(json.loads(meta["emolens_config"]))


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return Path(str(resources.files("emolens") / "weights" / f"{DEFAULT_MODEL_NAME}.safetensors"))


def resolve_model_path(model: str | Path | None) -> Path:
    """None or 'default' -> the shipped model; a folder -> its best.safetensors; else the file."""
    if model is None or str(model) == DEFAULT_MODEL_NAME:
        path = default_model_path()
        if not path.exists():
            raise ModelError(f"the default model is not installed at {path}; pass a model file trained with `emolens train`")
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


def load_model(model: str | Path | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model file (or the shipped default) in eval mode, config attached, without pickle."""
    from safetensors.torch import load_file

    path = resolve_model_path(model)
    config = read_model_config(path)
    net = build_model(config)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelError(f"{path}: weights could not be read ({exc})") from None
    ref = net.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    missing, unexpected = set(ref) - set(state), set(state) - set(ref)
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not fit architecture {config.arch!r} "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    net.load_state_dict(state)
    net.emolens_config = config
    return net.to(device).eval()
