"""Model files: safetensors weights with the model's config as JSON, never a pickle.

A model file `NAME.safetensors` carries its `ModelConfig` in the safetensors header metadata,
and a readable copy is written beside it as `NAME.json`. Loading rebuilds the architecture
from the config (`create_model(arch, **arch_kwargs)`) and attaches the config as
`model.emolens_config`, so inference never guesses input size, normalisation or label order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from emolens.errors import EmolensError, ModelError
from emolens.models.args import check_arch_kwargs
from emolens.models.config import (  # noqa: F401  (re-exported: the names model files have always been read with)
    DEFAULT_MODEL_NAME,
    FORMAT_VERSION,
    MAX_CONFIG_CHARS,
    MAX_MODEL_BYTES,
    SHIPPED_MODELS,
    TEMPERATURE_RANGE,
    ModelConfig,
    config_from_json,
    default_model_path,
    resolve_model_path,
    shipped_model_path,
)
from emolens.models.registry import check_arch, create_model


def build_model(config: ModelConfig) -> nn.Module:
    """An untrained model of the architecture `config` describes, with the config attached."""
    kwargs = check_arch_kwargs(config.arch, config.arch_kwargs, f"model config of {config.arch!r}")
    model = create_model(config.arch, num_classes=len(config.labels), input_size=config.preprocess.input_size, **kwargs)
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
    """The ModelConfig stored in a .safetensors model file (no weights are read), fully checked."""
    path = Path(path)
    return _config_in(_read_header(path)[0], path)


def _check_file(path: Path) -> None:
    """A regular file no larger than MAX_MODEL_BYTES: a FIFO would hang, /dev/zero would never end."""
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file; expected a .safetensors model file")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: file is {size / 2**20:.0f} MiB, more than the {MAX_MODEL_BYTES / 2**20:.0f} MiB a model file may hold")


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """The metadata and the tensor shapes in a safetensors header, read without loading a tensor."""
    from safetensors import safe_open

    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118  (safe_open is not a dict)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    return meta, shapes


def _config_in(meta: dict[str, str], path: Path) -> ModelConfig:
    if "emolens_config" not in meta:
        raise ModelError(f"{path}: safetensors file carries no emolens config; was it saved by emolens.save_model?")
    return config_from_json(meta["emolens_config"], str(path))


def load_model(model: str | Path | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model file (or the shipped default) in eval mode, config attached, without pickle.

    Everything the file claims is checked before memory is spent on it: the config's fields
    against their bounds, then the header's tensor shapes against the architecture the config
    describes (built on the meta device, which allocates nothing); only then is it built.
    """
    from safetensors.torch import load_file

    path = resolve_model_path(model)
    meta, shapes = _read_header(path)
    config = _config_in(meta, path)
    try:
        check_arch(config.arch)
    except ModelError as exc:
        raise ModelError(f"{path}: arch: {exc}") from None
    _check_shapes(config, shapes, path)
    net = _build(config, path)
    ref = net.state_dict()
    _check_fit(config, {k: tuple(v.shape) for k, v in ref.items()}, shapes, path)  # again for models built without meta
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelError(f"{path}: weights could not be read ({exc})") from None
    state = {k: v.to(ref[k].dtype) for k, v in state.items()}
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ModelError(f"{path}: tensor {k} holds NaN or infinite values; the weights are damaged (or training diverged)")
    net.load_state_dict(state)
    net.emolens_config = config
    return net.to(device).eval()


def _build(config: ModelConfig, path: Path) -> nn.Module:
    """build_model, with any failure of the architecture's constructor named as this file's."""
    try:
        return build_model(config)
    except EmolensError as exc:  # ModelError, or ConfigError naming a missing extra (timm)
        raise type(exc)(f"{path}: {exc}") from None
    except Exception as exc:  # a constructor refusing the arguments (e.g. widths and blocks of different lengths)
        raise ModelError(f"{path}: architecture {config.arch!r} cannot be built from this config ({exc.__class__.__name__}: {exc})") from None


def _check_shapes(config: ModelConfig, shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """Compare the header's shapes with the model the config describes, before building it.

    The meta device gives every tensor its shape and no memory, so a 25 MB file that claims an
    8 GB architecture is refused here. A constructor that computes with tensors (timm's drop-path
    schedules call .item()) cannot run on meta; those are checked after the real build instead,
    their size bounded by the allow-listed arguments.
    """
    try:
        with torch.device("meta"):
            net = build_model(config)
    except EmolensError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except Exception:
        return
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    heads = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    _check_fit(config, expected, shapes, path, head=f"{heads[-1]}.weight" if heads else None)


def _check_fit(
    config: ModelConfig, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], path: Path, head: str | None = None
) -> None:
    """ModelError unless the file holds exactly the tensors, of exactly the shapes, `expected` lists."""
    if head in found and found[head][:1] != expected[head][:1]:
        raise ModelError(
            f"{path}: labels: the config lists {len(config.labels)} emotions ({', '.join(config.labels)}) but the classifier "
            f"{head} has {found[head][0]} outputs; labels must name every output, in order"
        )
    missing, unexpected = set(expected) - set(found), set(found) - set(expected)
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not fit architecture {config.arch!r} "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    wrong = [f"{k} is {list(found[k])}, expected {list(v)}" for k, v in expected.items() if found[k] != v]
    if wrong:
        raise ModelError(
            f"{path}: weights do not fit architecture {config.arch!r} with arch_kwargs {config.arch_kwargs} and input size "
            f"{config.preprocess.input_size}: {len(wrong)} tensors have other shapes, e.g. {'; '.join(wrong[:3])}"
        )
