"""Training checkpoints without pickle: one safetensors file, written atomically.

A checkpoint `NAME.safetensors` holds the model's tensors (`model.*`), the optimiser's state
tensors (`optim.*`, flattened), and, in its header metadata, a JSON document with everything
else: epoch, step, optimiser hyper-parameters, schedule, early-stopping state, history,
config. Keeping the JSON inside the one file makes a save a single atomic rename, so a kill
at any moment leaves either the old checkpoint or the new one, never a mismatched pair. A
readable copy of the JSON is written beside it as `NAME.json` for people; loading ignores it.

Random state needs no saving: every stream (sampler order, augmentation, mixup, dropout) is
re-derived from (seed, epoch, rank) at the start of each epoch, and checkpoints are taken at
epoch boundaries, so a resumed run draws exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from emolens.errors import ModelError
from emolens.models.io import atomic_write_bytes

CHECKPOINT_FORMAT = 1
_META_KEY = "emolens_checkpoint"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.item()
    return v


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser state_dict -> (tensors for safetensors, JSON for the rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = _jsonable(v)
    return tensors, {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `flatten_optimizer`; `like` (a fresh optimiser's state_dict) restores tuples."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = []
    for g, ref in zip(meta["param_groups"], like["param_groups"], strict=True):
        groups.append({k: tuple(v) if isinstance(ref.get(k), tuple) and isinstance(v, list) else v for k, v in g.items()})
    return {"state": state, "param_groups": groups}


def encode_checkpoint(model_state: dict[str, torch.Tensor], optim_state: dict[str, Any], meta: dict[str, Any]) -> tuple[bytes, str]:
    """(safetensors bytes, JSON text) of a checkpoint; write them with `write_checkpoint`."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    opt_tensors, opt_meta = flatten_optimizer(optim_state)
    tensors.update(opt_tensors)
    doc = {"format": CHECKPOINT_FORMAT, **meta, "optimizer": opt_meta}
    text = json.dumps(_jsonable(doc), sort_keys=True)
    return save(tensors, metadata={_META_KEY: text}), text


def write_checkpoint(path: str | Path, blob: bytes, text: str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, blob)
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n").encode())
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """-> (model state, optimiser tensors, metadata). Raises ModelError naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint; a run folder keeps it in checkpoints/last.safetensors")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    except Exception as exc:  # safetensors raises its own types for truncated or corrupt files
        raise ModelError(f"{path}: checkpoint is not a readable safetensors file ({exc})") from None
    if meta_text is None:
        raise ModelError(f"{path}: safetensors file carries no emolens checkpoint metadata; it is a model file, not a checkpoint")
    meta = json.loads(meta_text)
    if meta.get("format", 0) > CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: checkpoint format {meta['format']} is newer than this emolens reads ({CHECKPOINT_FORMAT})")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return model, optim, meta
