"""Any `timm` architecture as an emolens model: "timm:NAME", grayscale input, local weights.

`create_model("timm:resnet18", num_classes=7)` builds `timm.create_model("resnet18",
in_chans=1, num_classes=7)`: timm itself gives the first convolution one input channel.
Nothing is downloaded unless asked for: `finetune(..., pretrained="hub")` (emolens/training/
finetune.py) is the only path that lets timm fetch weights; `pretrained=PATH` reads a local safetensors file, whose 3-channel
first convolution is folded to 1 channel (summed over RGB, timm's own rule, so a gray face
gives the activations the RGB network gives the same face repeated on three channels).

`finetune` trains such a model frozen-then-unfrozen; it tells the model built
inside `train` where its weights come from and what to freeze through `build_plan` here, so
the saved config never names a local weights file.

timm is an optional extra (`pip install 'emolens[timm]'`); it imports torchvision, whose
build must match the installed torch.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from emolens.errors import ConfigError, ModelError
from emolens.models.registry import register_family

PREFIX = "timm"
HUB = "hub"  # pretrained="hub": the one opt-in to timm's own download of ImageNet weights


def import_timm() -> Any:
    """The timm module, or ConfigError saying how to install it and why the import failed."""
    try:
        import timm
    except Exception as exc:  # ImportError, or a torchvision built for another torch failing inside timm
        raise ConfigError(
            f"timm models ('{PREFIX}:NAME') need the optional extra: pip install 'emolens[timm]'. timm imports torchvision, "
            f"which must be the build made for the installed torch {torch.__version__} (the CPU-only torch needs the CPU "
            f"torchvision wheel of the same release). Importing timm failed: {exc.__class__.__name__}: {exc}"
        ) from None
    return timm


@dataclass
class BuildPlan:
    """How the next timm model built in this context starts: weights and frozen layers."""

    weights: str | None = None  # a local .safetensors file
    hub: bool = False  # let timm download its pretrained weights
    freeze: bool = False  # train only the classifier
    report: dict[str, Any] | None = None  # filled in when the plan is used


_PLAN: contextvars.ContextVar[BuildPlan | None] = contextvars.ContextVar("emolens_timm_plan", default=None)


@contextmanager
def build_plan(plan: BuildPlan) -> Iterator[BuildPlan]:
    """Apply `plan` to the first timm model built inside the block (the one train() trains).

    A plan reaches the model this way rather than through the architecture's arguments, so
    the saved model config never names a weights file that another machine lacks.
    """
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)


def create_timm_model(name: str, *, num_classes: int = 7, in_chans: int = 1, input_size: int = 48, **kwargs: Any) -> nn.Module:
    """`timm.create_model(name, in_chans=1, num_classes=...)`, never downloading on its own.

    input_size is accepted for the emolens interface; CNNs pool to any size, and models that
    need it (ViTs) take timm's `img_size` in the architecture's kwargs.
    """
    timm = import_timm()
    if not timm.is_model(name):
        from difflib import get_close_matches

        close = get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(repr(f'{PREFIX}:{c}') for c in close)}?" if close else ""
        raise ModelError(f"timm has no model {name!r}.{hint} See timm.list_models()")
    plan = _PLAN.get()
    if plan is not None and plan.report is not None:
        plan = None  # already used by the model being trained; later builds only reload weights
    try:
        model = timm.create_model(name, pretrained=bool(plan and plan.hub), num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise ModelError(f"timm model {name!r} does not accept these arguments {sorted(kwargs)}: {exc}") from None
    if plan is not None:
        plan.report = load_pretrained(model, plan.weights) if plan.weights else {"source": HUB if plan.hub else None}
        if plan.freeze:
            plan.report["trainable"] = freeze_backbone(model)
    return model


register_family(PREFIX, create_timm_model)


def classifier_names(model: nn.Module) -> list[str]:
    """Names of the classifier's parameters (`fc.weight`, `head.fc.bias`, ...)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module) or not list(head.parameters()):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ModelError(f"{type(model).__name__}: found no classifier layer (no get_classifier() and no nn.Linear)")
        head = linears[-1]
    ids = {id(p) for p in head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def freeze_backbone(model: nn.Module) -> int:
    """Stop gradients everywhere but the classifier; returns the trainable parameter count.

    BatchNorm statistics keep adapting in training mode, which helps on 48x48 gray faces,
    a domain far from ImageNet; the weights themselves stay as loaded.
    """
    head = set(classifier_names(model))
    for n, p in model.named_parameters():
        p.requires_grad_(n in head)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load local safetensors weights into `model`, adapting what a new task changes.

    - a first convolution with 3 input channels is summed to the model's 1;
    - a classifier of another number of classes keeps its fresh initialisation;
    - anything else that does not fit raises ModelError naming the tensors.
    Accepts timm/Hugging Face `model.safetensors` files and emolens model files alike.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(
            f"{path}: pretrained weights must be a .safetensors file; .pth/.pt/.bin files are pickles, which can run code "
            "when loaded. Convert them once where you trust them: safetensors.torch.save_file(torch.load(f, weights_only=True), 'w.safetensors')"
        )
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    own = model.state_dict()
    head = set(classifier_names(model))
    new, adapted, skipped, mismatched = {}, [], [], []
    for k, v in state.items():
        if k not in own:
            skipped.append(k)
            continue
        ref = own[k]
        if v.shape == ref.shape:
            new[k] = v.to(ref.dtype)
        elif v.ndim == 4 and ref.ndim == 4 and ref.shape[1] == 1 and v.shape[0] == ref.shape[0] and v.shape[2:] == ref.shape[2:]:
            new[k] = v.to(torch.float32).sum(dim=1, keepdim=True).to(ref.dtype)  # (O, 3, k, k) -> (O, 1, k, k)
            adapted.append(k)
        elif k in head:
            skipped.append(k)  # another task's classifier
        else:
            mismatched.append(f"{k} {list(v.shape)} vs {list(ref.shape)}")
    if mismatched:
        raise ModelError(f"{path}: weights do not fit {type(model).__name__}: {', '.join(mismatched[:3])}")
    missing = [k for k in own if k not in new and k not in head and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"{path}: weights lack {len(missing)} tensors of {type(model).__name__}, e.g. {missing[:3]}; is it the same architecture?")
    model.load_state_dict(new, strict=False)
    return {"source": str(path), "loaded": len(new), "adapted_to_gray": adapted, "not_used": skipped}


__all__ = ["HUB", "PREFIX", "BuildPlan", "build_plan", "classifier_names", "create_timm_model", "freeze_backbone", "import_timm", "load_pretrained"]
