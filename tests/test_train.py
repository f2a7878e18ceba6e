"""End-to-end training on the synthetic set: learning, run folder, model file, resume, checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import emolens.training.trainer as trainer_mod
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError, ModelError
from emolens.inference import predict_proba
from emolens.models import load_model, read_model_config
from emolens.training import load_config, train
from emolens.training.checkpoint import read_checkpoint

# A tiny VGG on 24x24 faces: a few hundred images a second even on two busy cores.
TINY = [
    "model.arch=vgg_fer", "model.kwargs={widths: [8, 16, 32], hidden: 32, dropout: 0.1}",
    "model.preprocess.image_size=24", "model.preprocess.input_size=24",
    "data.batch_size=32", "optim.lr=3e-3", "schedule.warmup_epochs=0.5", "run.progress=false", "run.plots=false",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small() -> object:
    return make_synthetic_dataset(n_per_class=20, image_size=24, seed=0)


def tiny(tmp_path: Path, *extra: str) -> object:
    return load_config(overrides=[*TINY, f"run.out_dir={tmp_path / 'runs'}", *extra])


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.safetensors")[0]


def _history(result) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_s")} for h in result.history]


def test_learns_synthetic_faces_and_writes_a_complete_run(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(n_per_class=70, image_size=24, seed=1)
    cfg = tiny(tmp_path, "schedule.epochs=10", "aug.enabled=false", "loss.label_smoothing=0", "run.name=learn")
    result = train(cfg, dataset=ds)
    assert result.metrics["val_acc"] > 0.6, result.history  # chance is 1/7
    run = result.run_dir
    assert run == tmp_path / "runs" / "learn"
    for name in ("config.yaml", "history.csv", "history.json", "best.safetensors", "best.json",
                 "checkpoints/last.safetensors", "checkpoints/last.json", "checkpoints/best.safetensors"):
        assert (run / name).is_file(), name
    assert load_config(run / "config.yaml").schedule.epochs == 10
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert header == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds", "images_per_s"]
    assert len(json.loads((run / "history.json").read_text())) == 10
    assert not list(run.rglob("*.tmp"))

    # The model file: full config, temperature fitted, and the same predictions as in memory.
    mc = read_model_config(result.model_path)
    assert mc.arch == "vgg_fer" and mc.preprocess.input_size == 24 and mc.labels == ds.classes
    assert mc.training["data"]["source_sha256"] == ds.source_sha256
    assert mc.training["config"]["schedule"]["epochs"] == 10 and mc.training["epochs"] == 10
    assert mc.training["device"] == "cpu" and mc.training["emolens_version"]
    assert mc.temperature == pytest.approx(result.metrics["temperature"]) and mc.temperature != 1.0
    assert {"val_ece_before", "val_ece_after", "val_f1", "best_epoch"} <= set(mc.metrics)
    assert result.metrics["val_nll_after"] <= result.metrics["val_nll_before"] + 1e-9
    loaded = load_model(result.model_path)
    test = ds.subset("test").images
    np.testing.assert_allclose(predict_proba(loaded, test), predict_proba(result.model, test), atol=1e-6)
    best = max(result.history, key=lambda h: h["val_acc"])
    assert result.best_epoch == best["epoch"]


def test_existing_run_is_never_overwritten(tmp_path: Path, small) -> None:
    cfg = tiny(tmp_path, "schedule.epochs=1", "run.name=same")
    first = train(cfg, dataset=small)
    before = (first.run_dir / "best.safetensors").read_bytes()
    second = train(cfg, dataset=small)
    assert first.run_dir.name == "same" and second.run_dir.name == "same-2"
    assert (first.run_dir / "best.safetensors").read_bytes() == before


def test_resume_continues_exactly(tmp_path: Path, small, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mixup, cutmix, oversampling, SGD and a plateau schedule: every stateful piece at once.
    # (Plateau, unlike cosine, does not depend on the total length, so a run extended from
    # 2 to 4 epochs must also equal one planned for 4.)
    extra = ("aug.mixup_alpha=0.4", "aug.cutmix_alpha=1.0", "aug.mix_prob=0.5", "imbalance.strategy=oversample",
             "optim.name=sgd", "schedule.name=plateau", "schedule.plateau_patience=0")
    full = train(tiny(tmp_path, *extra, "schedule.epochs=4", "run.name=full"), dataset=small)

    # 1. Killed right after epoch 2's checkpoint, as Ctrl-C or a pre-empted job would.
    real = trainer_mod.write_history

    def dying(run_dir, history):
        real(run_dir, history)
        if len(history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "write_history", dying)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, *extra, "schedule.epochs=4", "run.name=cut"), dataset=small)
    monkeypatch.setattr(trainer_mod, "write_history", real)
    resumed = train(resume=tmp_path / "runs" / "cut", dataset=small)

    # 2. A finished 2-epoch run, extended to 4.
    two = train(tiny(tmp_path, *extra, "schedule.epochs=2", "run.name=two"), dataset=small)
    more = train(load_config(two.run_dir / "config.yaml", ["schedule.epochs=4"]), resume=two.run_dir, dataset=small)

    a = _weights(full.run_dir)
    for other in (resumed, more):
        assert _history(other) == _history(full) and other.epochs_run == 4
        b = _weights(other.run_dir)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_during_checkpoint_write_leaves_the_previous_one(tmp_path: Path, small, monkeypatch: pytest.MonkeyPatch) -> None:
    import emolens.models.io as ckpt  # checkpoints are written by its atomic_write_bytes

    real_replace, calls = ckpt.os.replace, []

    def dying_replace(src, dst):
        # The 2nd epoch's checkpoint: its .tmp is written in full, then the process dies.
        if str(dst).endswith("last.safetensors"):
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, "schedule.epochs=3", "run.name=k"), dataset=small)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    run = tmp_path / "runs" / "k"
    assert (run / "checkpoints" / "last.safetensors.tmp").exists()
    assert read_checkpoint(run / "checkpoints" / "last.safetensors")[2]["epoch"] == 1
    (run / "checkpoints" / "last.safetensors.tmp").write_bytes(b"garbage")  # a torn temp file
    resumed = train(resume=run, dataset=small)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_corrupt_checkpoint_and_bad_resume_raise(tmp_path: Path, small) -> None:
    result = train(tiny(tmp_path, "schedule.epochs=1", "run.name=c"), dataset=small)
    with pytest.raises(ConfigError, match="changed settings"):
        train(tiny(tmp_path, "schedule.epochs=1", "optim.lr=0.5"), resume=result.run_dir, dataset=small)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(resume=tmp_path, dataset=small)
    last = result.run_dir / "checkpoints" / "last.safetensors"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ModelError, match="not a readable safetensors"):
        train(resume=result.run_dir, dataset=small)


def test_finished_run_resume_trains_nothing(tmp_path: Path, small) -> None:
    result = train(tiny(tmp_path, "schedule.epochs=1", "run.name=f"), dataset=small)
    again = train(resume=result.run_dir, dataset=small)
    assert again.epochs_run == 1 and len(again.history) == 1


@pytest.mark.parametrize("strategy", ["none", "class_weights", "focal", "oversample", "undersample"])
def test_every_imbalance_strategy_trains(tmp_path: Path, strategy: str) -> None:
    # Imbalanced: the first class keeps a quarter of its rows.
    ds = make_synthetic_dataset(n_per_class=12, image_size=24, seed=0)
    drop = np.flatnonzero((ds.labels == 0) & (ds.split == 0))[3:]
    ds = ds.subset(np.setdiff1d(np.arange(len(ds)), drop))
    result = train(tiny(tmp_path, "schedule.epochs=1", f"imbalance.strategy={strategy}", "data.batch_size=16"), dataset=ds)
    assert np.isfinite(result.history[0]["train_loss"])


def test_soft_labels_and_sgd_plateau_train(tmp_path: Path, small) -> None:
    import dataclasses

    rng = np.random.default_rng(0)
    soft = np.eye(7, dtype=np.float32)[small.labels] * 6 + rng.random((len(small), 7), dtype=np.float32)
    ds = dataclasses.replace(small, soft_labels=soft / soft.sum(1, keepdims=True))
    result = train(tiny(tmp_path, "schedule.epochs=2", "optim.name=sgd", "schedule.name=plateau"), dataset=ds)
    assert all(np.isfinite(h["train_loss"]) for h in result.history)


def test_early_stopping(tmp_path: Path, small) -> None:
    # min_delta 10 means no epoch after the first counts as an improvement.
    cfg = tiny(tmp_path, "schedule.epochs=10", "schedule.early_stop_patience=2", "schedule.monitor=val_loss", "schedule.min_delta=10")
    result = train(cfg, dataset=small)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1


def test_cli_trains_on_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emolens.cli import main

    sets = [a for o in [*TINY, f"run.out_dir={tmp_path}", "data.synthetic_per_class=8", "run.plots=true"] for a in ("--set", o)]
    assert main(["train", "--data", "synthetic", "--epochs", "1", "--name", "cli", *sets]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run_dir"] == str(tmp_path / "cli") and Path(summary["model_path"]).is_file()
    assert (tmp_path / "cli" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["train", "--resume", str(tmp_path / "cli"), "--epochs", "2", "--set", "run.progress=false"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_run"] == 2


@pytest.mark.filterwarnings("ignore:run.amp=bf16 on a CPU without native support")
def test_validation_is_scored_in_fp32_when_training_runs_in_bf16(tmp_path: Path, small) -> None:
    """The best epoch is picked on the figures the shipped (fp32) model gets, not bf16's: under
    bf16 autocast FER+ validation moved by up to 0.15 points."""
    result = train(tiny(tmp_path, "schedule.epochs=1", "run.amp=bf16", "run.name=bf16"), dataset=small)
    cfg = load_config(result.run_dir / "config.yaml")
    _, val = trainer_mod.split_train_val(small, cfg)
    model = load_model(result.run_dir / "best.safetensors")
    model.load_state_dict(_weights(result.run_dir))  # the epoch's weights, before the temperature
    fp32 = trainer_mod.evaluate(model, torch.from_numpy(val.images), torch.from_numpy(val.labels), cfg, torch.device("cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = trainer_mod.evaluate(model, torch.from_numpy(val.images), torch.from_numpy(val.labels), cfg, torch.device("cpu"))
    recorded = result.history[-1]["val_loss"]
    # How far bf16 moves the loss depends on the CPU's kernels (5.8e-6 of it on an AMD EPYC with
    # AVX512-BF16, more elsewhere); fp32 run twice agrees far closer than that.
    assert recorded == pytest.approx(fp32["val_loss"], rel=5e-7)
    assert abs(bf16["val_loss"] - fp32["val_loss"]) > 1e-6 * fp32["val_loss"]  # bf16 would have shown


def test_second_stage_starts_from_the_first_runs_weights(tmp_path: Path, small) -> None:
    first = train(tiny(tmp_path, "schedule.epochs=1", "run.name=stage1"), dataset=small)
    second = train(tiny(tmp_path, "schedule.epochs=1", "run.name=stage2", f"model.init={first.run_dir}", "optim.lr=1e-9",
                        "schedule.warmup_epochs=0"), dataset=small)
    init = read_model_config(second.run_dir / "best.safetensors").training["init"]
    assert init["name"] == "stage1" and len(init["sha256"]) == 64 and set(init["metrics"]) == {"val_acc", "val_f1"}
    # At a learning rate of 1e-9 only BatchNorm statistics move: the weights are the first run's.
    w1, w2 = load_model(first.run_dir).state_dict(), load_model(second.run_dir).state_dict()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-6) for k in w1 if "running" not in k and "num_batches" not in k)
    with pytest.raises(ConfigError, match="holds a 'vgg_fer' model"):
        train(tiny(tmp_path, "run.name=stage3", f"model.init={first.run_dir}", "model.arch=simple_cnn", "model.kwargs={}"), dataset=small)


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teachers() -> None:
    from emolens.training.losses import distillation_loss

    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(8, 7, generator=g)
    for T in (1.0, 4.0):
        assert distillation_loss(teacher.clone(), [teacher], T).item() == pytest.approx(0.0, abs=1e-6)
        assert distillation_loss(torch.zeros(8, 7), [teacher], T).item() > 0.01
    # Two teachers: the target is the mean of their distributions, not of their logits.
    a, b = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    student = torch.zeros(4, 7, requires_grad=True)
    distillation_loss(student, [a, b], 1.0).backward()
    mean_p = (a.softmax(1) + b.softmax(1)) / 2
    assert torch.allclose(student.grad, (student.softmax(1) - mean_p).detach() / 4, atol=1e-6)


def test_student_learns_what_its_teacher_says(tmp_path: Path, small) -> None:
    """A teacher biased to answer 'happy' everywhere: a student taught only by it (alpha=1)
    answers 'happy' too, which the labels alone (balanced synthetic classes) never teach."""
    from emolens.models import add_class_bias, save_model

    teacher_run = train(tiny(tmp_path, "schedule.epochs=1", "run.name=teacher"), dataset=small)
    teacher = load_model(teacher_run.run_dir)
    happy = teacher.emolens_config.labels.index("happy")
    add_class_bias(teacher, [30.0 if i == happy else 0.0 for i in range(len(teacher.emolens_config.labels))])
    teacher_path = save_model(teacher, tmp_path / "happy-teacher.safetensors")
    student = train(tiny(tmp_path, "schedule.epochs=3", "run.name=student", f"distill.teachers=[{teacher_path}]",
                         "distill.alpha=1.0", "distill.temperature=1.0", "imbalance.strategy=none", "loss.label_smoothing=0"), dataset=small)
    probs = predict_proba(load_model(student.run_dir), small.images)
    assert (probs.argmax(1) == happy).mean() > 0.9
    record = read_model_config(student.run_dir / "best.safetensors").training["distill"]
    assert record["alpha"] == 1.0 and record["teachers"][0]["sha256"] == __import__("hashlib").sha256(teacher_path.read_bytes()).hexdigest()
    # Resuming with other teacher files is refused: the run would no longer be one recipe.
    save_model(load_model(teacher_run.run_dir), teacher_path)
    with pytest.raises(ConfigError, match=r"distill\.teachers changed"):
        train(resume=student.run_dir)


def test_teacher_must_match_the_students_labels_and_input(tmp_path: Path, small) -> None:
    teacher_run = train(tiny(tmp_path, "schedule.epochs=1", "run.name=teacher"), dataset=small)
    with pytest.raises(ConfigError, match="expects preprocessing"):
        train(tiny(tmp_path, "run.name=s1", f"distill.teachers={teacher_run.run_dir}", "model.preprocess.input_size=20"), dataset=small)
    # How photos are cropped (framing, margin) is not part of the batch: a shipped model with its
    # measured framing still teaches.
    from emolens.models import save_model

    framed = load_model(teacher_run.run_dir)
    framed.emolens_config = dataclasses.replace(
        framed.emolens_config, preprocess=dataclasses.replace(framed.emolens_config.preprocess, face_margin=0.3, framing={"haar": (1.1, 0.0, 0.02)})
    )
    framed_path = save_model(framed, tmp_path / "framed.safetensors")
    assert train(tiny(tmp_path, "schedule.epochs=1", "run.name=s3", f"distill.teachers=[{framed_path}]"), dataset=small).best_epoch == 1
    with pytest.raises(ConfigError, match=r"distill\.teachers: .*no-such"):
        train(tiny(tmp_path, "run.name=s2", f"distill.teachers=[{tmp_path / 'no-such.safetensors'}]"), dataset=small)
