"""Training checkpoints without pickle: one safetensors file, written atomically.

A checkpoint `NAME.safetensors` holds the model's tensors (`model.*`), the optimiser's state
tensors (`optim.*`, flattened), and, in its header metadata, a JSON document with everything
else: epoch, step, optimiser hyper-parameters, schedule, early-stopping state, history,
config. Keeping the JSON inside the one file makes a save a single atomic rename, so a kill
at any moment leaves either the old checkpoint or the new one, never a mismatched pair. A
readable copy of the JSON is written beside it as `NAME.json` for people; loading ignores it.

Each checkpoint records `weights_sha256`, the hash of its model tensors, and `last` records
which epoch and weights `best` must hold (`meta["best"]`). `last` is the commit point of an
epoch: it is written first, `best` after it, so a kill in between leaves `best` one best
epoch behind what `last` says, never ahead of it; and then `last` itself holds the missing
weights (that epoch was the best). `repair_best_checkpoint` detects this on resume and
copies `last` over `best`, so the pair agrees again before training continues.

Random state needs no saving: every stream (sampler order, augmentation, mixup, dropout) is
re-derived from (seed, epoch, rank) at the start of each epoch, and checkpoints are taken at
epoch boundaries, so a resumed run draws exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
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


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes: the identity of a set of weights.

    It hashes the tensors, not a file, so a checkpoint and a model file with the same weights
    but other metadata match, and a file can record the hash of its own weights.
    """
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def encode_checkpoint(
    model_state: dict[str, torch.Tensor], optim_state: dict[str, Any], meta: dict[str, Any], weights_sha: str | None = None,
) -> tuple[bytes, str]:
    """(safetensors bytes, JSON text) of a checkpoint; write them with `write_checkpoint`.

    `weights_sha` is `weights_sha256(model_state)` when the caller has it already (hashing a
    large model takes a while); it is computed otherwise.
    """
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    opt_tensors, opt_meta = flatten_optimizer(optim_state)
    tensors.update(opt_tensors)
    doc = {"format": CHECKPOINT_FORMAT, **meta, "optimizer": opt_meta, "weights_sha256": weights_sha or weights_sha256(model_state)}
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


def read_checkpoint_meta(path: str | Path) -> dict[str, Any] | None:
    """A checkpoint's metadata, from its header only; None when missing or not a checkpoint."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            text = (f.metadata() or {}).get(_META_KEY)
    except Exception:  # missing, torn or foreign: to the caller all mean "not this checkpoint"
        return None
    return json.loads(text) if text else None


def _holds(meta: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    """Whether a checkpoint's metadata is the one `want` (an epoch, maybe a sha256) names."""
    if meta is None or meta.get("epoch") != want["epoch"]:
        return False
    return "weights_sha256" not in want or meta.get("weights_sha256") == want["weights_sha256"]


def best_record(last_meta: dict[str, Any]) -> dict[str, Any]:
    """{epoch, weights_sha256} that `best` must hold by `last`; older checkpoints give the epoch only."""
    return last_meta.get("best") or {"epoch": int(last_meta["early_stopping"]["best_epoch"])}


def repair_best_checkpoint(ckpt_dir: Path, last_meta: dict[str, Any]) -> bool:
    """Make `best.safetensors` hold what `last` says it holds; True when it had to be rewritten.

    The only mismatch a kill leaves is `best` behind a `last` whose own epoch was the best
    (see the module docstring), and then `last` is the right `best`. Anything else means files
    were changed by hand: a ModelError, since the best weights are gone.
    """
    want = best_record(last_meta)
    if want["epoch"] < 1:  # no epoch has been scored yet
        return False
    best, last = ckpt_dir / "best.safetensors", ckpt_dir / "last.safetensors"
    found = read_checkpoint_meta(best)
    if _holds(found, want):
        return False
    if not _holds(last_meta, want):
        found = found or {}
        raise ModelError(
            f"{best}: holds epoch {found.get('epoch')} (weights {str(found.get('weights_sha256'))[:12]}), but last says the best is "
            f"epoch {want['epoch']} (weights {str(want.get('weights_sha256'))[:12]}) and no checkpoint keeps those weights "
            "(was the folder edited by hand?); they are lost: start a new run"
        )
    write_checkpoint(best, last.read_bytes(), json.dumps(last_meta))
    return True


def sync_twin(path: Path, meta: dict[str, Any]) -> bool:
    """Rewrite the readable `.json` beside a checkpoint when a kill left it describing another; True if rewritten."""
    twin = path.with_suffix(".json")
    try:
        if json.loads(twin.read_text()) == meta:
            return False
    except (OSError, ValueError):
        pass  # missing or torn: rewrite
    atomic_write_bytes(twin, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
    return True
