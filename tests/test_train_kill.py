"""Training killed at every file operation, then resumed: the run always finishes, and its model
file holds the best checkpoint's weights with metrics and temperature fitted on exactly those.

Every file a run writes goes through `atomic_write_bytes`: a temp file, then `os.replace`.
Patching `os.replace` to tear the temp file and die at its k-th call (k = 1 .. every write of
a whole run, the final model included) visits every state a kill can leave behind: k-1
operations done, the k-th half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import emolens.training.trainer as trainer_mod
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError
from emolens.evaluation.calibration import fit_temperature
from emolens.inference import predict_logits
from emolens.models import load_model
from emolens.training import load_config, train
from emolens.training.checkpoint import read_checkpoint
from emolens.training.schedule import EarlyStopping

# An untrained tiny model's temperature may sit at the search range's edge: expected here.
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:fitted temperature:RuntimeWarning")]

TINY = [
    "model.arch=vgg_fer", "model.kwargs={widths: [8, 16, 32], hidden: 32, dropout: 0.1}",
    "model.preprocess.image_size=24", "model.preprocess.input_size=24", "data.batch_size=16", "optim.lr=1e-2", "aug.enabled=false",
    "schedule.warmup_epochs=0.5", "schedule.monitor=val_loss", "run.progress=false", "run.plots=false",
]

# The monitored value per epoch, scripted so the interesting order happens whatever the tiny
# model learns: "improves" has a best epoch after an earlier best followed by epochs that are
# not (a kill there once left the older best's weights under the newer best's metrics);
# "first" has only epoch 1 best (a kill there once left no best model, at every resume).
SCRIPTS = {"improves": {1: 1.0, 2: 0.5, 3: 0.7}, "first": {1: 1.0, 2: 2.0, 3: 3.0}}


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the trainer may catch it."""


def _scripted(script: dict[int, float]) -> type[EarlyStopping]:
    class Scripted(EarlyStopping):
        def update(self, value: float, epoch: int) -> bool:
            return super().update(script[epoch], epoch)

    return Scripted


def _sha(state: dict[str, torch.Tensor]) -> str:
    # The trainer's definition, re-derived here so the test does not trust the code it checks.
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _header_config(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["emolens_config"])


def _plain(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_s")} for h in history]


def _same_record(a: dict, b: dict) -> bool:
    """Two model configs alike but for what differs between runs: their names and wall time."""
    def strip(c: dict) -> dict:
        training = {k: v for k, v in c["training"].items() if k not in ("seconds", "config")}
        return {**c, "name": "", "training": training}

    return strip(a) == strip(b)


@pytest.fixture(scope="module")
def data() -> object:
    return make_synthetic_dataset(n_per_class=12, image_size=24, seed=0)


def _run(tmp_path: Path, name: str, epochs: int, data, monkeypatch, script, kill_at: int | None = None, resume: bool = False):
    """Train (or resume); with `kill_at`, die at that os.replace inside the run folder. -> (result, replaces seen)."""
    monkeypatch.setattr(trainer_mod, "EarlyStopping", _scripted(script))
    run_dir = tmp_path / "runs" / name
    real, seen = os.replace, []

    def replace(src, dst):
        if Path(dst).is_relative_to(run_dir):
            seen.append(Path(dst).relative_to(run_dir))
            if len(seen) == kill_at:
                Path(src).write_bytes(Path(src).read_bytes()[: os.path.getsize(src) // 2])  # torn temp file
                raise _Killed
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    try:
        if resume:
            return train(resume=run_dir, dataset=data), seen
        cfg = load_config(overrides=[*TINY, f"schedule.epochs={epochs}", f"run.name={name}", f"run.out_dir={tmp_path / 'runs'}"])
        return train(cfg, dataset=data), seen
    finally:
        monkeypatch.setattr(os, "replace", real)


def _check_model_file(run_dir: Path, data) -> tuple[dict[str, torch.Tensor], dict]:
    """The model file's weights hash to what it and its twin record, and its temperature was
    fitted on those weights. -> (weights, config)."""
    path = run_dir / "best.safetensors"
    weights = load_file(str(path))
    config = _header_config(path)
    assert json.loads((run_dir / "best.json").read_text()) == config, "best.json describes another file"
    assert config["training"]["weights_sha256"] == _sha(weights)
    best_ckpt, _, meta = read_checkpoint(run_dir / "checkpoints" / "best.safetensors")
    assert meta["epoch"] == config["metrics"]["best_epoch"] == config["training"]["best_epoch"]
    assert best_ckpt.keys() == weights.keys() and all(torch.equal(best_ckpt[k], weights[k]) for k in weights)
    val = data.subset("val")
    T = fit_temperature(predict_logits(load_model(path), val.images), val.labels)
    assert config["temperature"] == pytest.approx(T, rel=1e-6) and config["metrics"]["temperature"] == config["temperature"]
    history = json.loads((run_dir / "history.json").read_text())
    row = next(h for h in history if h["epoch"] == config["metrics"]["best_epoch"])
    assert {k: config["metrics"][k] for k in ("val_acc", "val_f1", "val_loss")} == {k: row[k] for k in ("val_acc", "val_f1", "val_loss")}
    assert not list(run_dir.rglob("*.tmp"))
    return weights, config


@pytest.mark.parametrize("scenario", sorted(SCRIPTS))
def test_killed_at_every_write_the_resumed_run_ends_consistent(tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch, scenario: str) -> None:
    script = SCRIPTS[scenario]
    epochs = len(script)
    ref, writes = _run(tmp_path, "ref", epochs, data, monkeypatch, script)
    _check_model_file(ref.run_dir, data)
    assert ref.best_epoch == min(script, key=script.get)
    assert len(writes) > 4 * epochs  # last, best and the model file, each with its twin, and the history

    for k in range(1, len(writes) + 1):
        name = f"kill-{k:02d}"
        with pytest.raises(_Killed):
            _run(tmp_path, name, epochs, data, monkeypatch, script, kill_at=k)
        run_dir = tmp_path / "runs" / name
        if not (run_dir / "checkpoints" / "last.safetensors").is_file():
            with pytest.raises(ConfigError, match="no checkpoint"):  # died before epoch 1 was saved: start again
                train(resume=run_dir, dataset=data)
            continue
        resumed, _ = _run(tmp_path, name, epochs, data, monkeypatch, script, resume=True)
        _check_like_reference(resumed, ref, data, f"killed at write {k} ({writes[k - 1]})")


def _check_like_reference(resumed, ref, data, where: str) -> None:
    """The resumed run ended as the uninterrupted one: same history, best epoch, weights, record."""
    assert resumed.epochs_run == ref.epochs_run and resumed.best_epoch == ref.best_epoch, where
    assert _plain(resumed.history) == _plain(ref.history), where
    ref_weights = load_file(str(ref.run_dir / "best.safetensors"))
    final = load_file(str(resumed.run_dir / "best.safetensors"))
    assert all(torch.equal(final[n], ref_weights[n]) for n in ref_weights), where  # the best epoch's weights
    _, config = _check_model_file(resumed.run_dir, data)
    assert _same_record(config, _header_config(ref.run_dir / "best.safetensors")), where  # metrics, temperature, record


def test_killed_again_while_resume_repairs(tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed as epoch 2 (a new best) writes its best checkpoint, then killed again at every
    write of the resume that repairs it: the third start still ends as the uninterrupted run."""
    script = SCRIPTS["improves"]
    epochs = len(script)
    ref, writes = _run(tmp_path, "ref", epochs, data, monkeypatch, script)
    first_kill = [i for i, w in enumerate(writes, 1) if str(w) == "checkpoints/best.safetensors"][1]  # epoch 2's
    with pytest.raises(_Killed):
        _run(tmp_path, "probe", epochs, data, monkeypatch, script, kill_at=first_kill)
    _, resume_writes = _run(tmp_path, "probe", epochs, data, monkeypatch, script, resume=True)
    assert [str(w) for w in resume_writes[1:3]] == ["checkpoints/best.safetensors", "checkpoints/best.json"]  # the repair
    for k in range(1, len(resume_writes) + 1):
        name = f"again-{k:02d}"
        with pytest.raises(_Killed):
            _run(tmp_path, name, epochs, data, monkeypatch, script, kill_at=first_kill)
        with pytest.raises(_Killed):
            _run(tmp_path, name, epochs, data, monkeypatch, script, kill_at=k, resume=True)
        resumed, _ = _run(tmp_path, name, epochs, data, monkeypatch, script, resume=True)
        _check_like_reference(resumed, ref, data, f"killed at write {first_kill}, then at resume write {k} ({resume_writes[k - 1]})")
