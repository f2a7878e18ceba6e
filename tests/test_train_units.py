"""The pieces of training on their own: samplers, losses, schedule, calibration, AMP choice, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emolens.errors import ConfigError, ModelError
from emolens.evaluation.calibration import expected_calibration_error, fit_temperature
from emolens.evaluation.calibration import temperature_nll as nll
from emolens.training.checkpoint import (
    encode_checkpoint,
    read_checkpoint,
    read_checkpoint_meta,
    repair_best_checkpoint,
    unflatten_optimizer,
    weights_sha256,
    write_checkpoint,
)
from emolens.training.config import AugConfig, ScheduleConfig
from emolens.training.losses import DistributionLoss, class_weights, mix_batch
from emolens.training.samplers import BalancedSampler, epoch_indices, make_sampler
from emolens.training.schedule import EarlyStopping, LRSchedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")



LABELS = np.repeat(np.arange(7), [50, 5, 30, 80, 40, 20, 10])  # imbalanced, like FER-2013


@pytest.mark.parametrize("strategy", ["none", "oversample", "undersample"])
def test_samplers_shard_disjointly_and_cover_the_epoch(strategy: str) -> None:
    shards = [epoch_indices(make_sampler(LABELS, strategy, num_replicas=3, rank=r, seed=1), epoch=2) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    single = epoch_indices(make_sampler(LABELS, strategy, num_replicas=1, rank=0, seed=1), epoch=2)
    if strategy == "none":
        # A permutation, padded by wrapping: shards are disjoint apart from the padding.
        seen = np.concatenate(shards)
        pad = len(seen) - len(LABELS)
        assert 0 <= pad < 3 and set(seen.tolist()) == set(range(len(LABELS)))
        assert np.bincount(seen).max() <= 2 and (np.bincount(seen) == 2).sum() == pad
    else:
        # The global draw is split by position: shards interleave to exactly the single-process order.
        merged = np.stack(shards, 1).reshape(-1)[: len(single)]
        assert np.array_equal(merged, single)
    again = epoch_indices(make_sampler(LABELS, strategy, num_replicas=3, rank=1, seed=1), epoch=2)
    assert np.array_equal(again, shards[1])  # seeded: same epoch, same rows
    other = epoch_indices(make_sampler(LABELS, strategy, num_replicas=3, rank=1, seed=1), epoch=3)
    assert not np.array_equal(other, shards[1])  # reshuffled every epoch


def test_oversample_balances_and_undersample_caps() -> None:
    over = np.concatenate([epoch_indices(BalancedSampler(LABELS, "oversample", seed=0), e) for e in range(20)])
    counts = np.bincount(LABELS[over], minlength=7) / len(over)
    assert np.allclose(counts, 1 / 7, atol=0.02)
    under = epoch_indices(BalancedSampler(LABELS, "undersample", seed=0), 0)
    assert np.array_equal(np.bincount(LABELS[under]), [5] * 7) and len(set(under)) == len(under)


def test_class_weights_are_balanced() -> None:
    w = class_weights(np.array([100, 10, 0, 50]), power=1.0)
    assert w[2] == 0 and torch.allclose(w[[0, 1, 3]].mean(), torch.tensor(1.0))
    assert w[1] / w[0] == pytest.approx(10.0)
    assert class_weights(np.array([100, 25]), power=0.5)[1] / class_weights(np.array([100, 25]), power=0.5)[0] == pytest.approx(2.0)


def test_distribution_loss_matches_torch_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 7, generator=g), torch.randint(0, 7, (16,), generator=g)
    onehot = F.one_hot(y, 7).float()
    torch.testing.assert_close(DistributionLoss(0.1)(logits, onehot), F.cross_entropy(logits, y, label_smoothing=0.1))
    w = torch.rand(7, generator=g) + 0.5
    torch.testing.assert_close(DistributionLoss(0.0, w)(logits, onehot), F.cross_entropy(logits, y, weight=w))
    focal = DistributionLoss(0.0, None, focal_gamma=2.0)(logits, onehot)
    p = logits.softmax(1)[torch.arange(16), y]
    torch.testing.assert_close(focal, (-(1 - p) ** 2 * p.log()).mean())


def test_mixing_keeps_targets_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(8, 1, 12, 12), F.one_hot(torch.arange(8) % 7, 7).float()
    for aug in (AugConfig(mixup_alpha=0.4), AugConfig(cutmix_alpha=1.0)):
        mx, mt = mix_batch(x, t, aug, g)
        assert mx.shape == x.shape and torch.allclose(mt.sum(1), torch.ones(8))
    same_x, same_t = mix_batch(x, t, AugConfig(), g)
    assert same_x is x and same_t is t


def test_cosine_and_plateau_schedules() -> None:
    cos = LRSchedule(ScheduleConfig(epochs=10, warmup_epochs=1, min_lr_ratio=0.1), 1.0, steps_per_epoch=10)
    assert cos.lr_at(0) == pytest.approx(0.1) and cos.lr_at(9) == pytest.approx(1.0)
    assert cos.lr_at(99) == pytest.approx(0.1, abs=1e-3) and cos.lr_at(50) < cos.lr_at(20)
    plat = LRSchedule(ScheduleConfig(name="plateau", warmup_epochs=0, plateau_patience=1, plateau_factor=0.5, monitor="val_loss"), 1.0, 10)
    for v in (1.0, 0.9, 0.95, 0.95):
        plat.epoch_end(v)
    assert plat.lr_at(100) == pytest.approx(0.5)
    stop = EarlyStopping("val_acc", patience=2)
    assert [stop.update(v, e) for e, v in enumerate([0.5, 0.6, 0.6, 0.55], 1)] == [True, True, False, False]
    assert stop.stop and stop.best_epoch == 2


def test_ece_and_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    true_t = 2.5
    p = np.exp(logits / true_t)
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in p])
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.1)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert expected_calibration_error(p, labels) < 0.03  # calibrated by construction
    over = np.exp(logits)
    over /= over.sum(1, keepdims=True)
    assert expected_calibration_error(over, labels) > 0.1
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_amp_choice_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from emolens.runtime import devices as dev

    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.resolve_amp("auto", cpu) is None and dev.resolve_amp("off", cpu) is None
    with pytest.warns(UserWarning, match="without AMX trains slower"):
        assert dev.resolve_amp("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.resolve_amp("auto", cpu) == torch.bfloat16


def test_bf16_only_with_amx_and_channels_last_with_avx512(monkeypatch: pytest.MonkeyPatch) -> None:
    """AVX512-BF16 without AMX trained slower in bf16 than in fp32 (benchmarks/train_throughput.py
    --amp off bf16): auto takes bf16 only with AMX tiles; channels_last on CUDA and AVX-512 CPUs."""
    from emolens.runtime import devices as dev

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert not dev.cpu_has_native_bf16() and dev.resolve_amp("auto", cpu) is None
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    assert dev.cpu_has_native_bf16() and dev.resolve_amp("auto", cpu) == torch.bfloat16
    assert dev.resolve_channels_last(None, cpu) and not dev.resolve_channels_last(False, cpu)
    assert dev.resolve_channels_last(None, torch.device("cuda"))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not dev.cpu_has_native_bf16() and not dev.resolve_channels_last(None, cpu) and dev.resolve_channels_last(True, cpu)


def test_checkpoint_round_trip_without_pickle(tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    for opt in (torch.optim.AdamW(model.parameters(), betas=(0.8, 0.9)), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        blob, text = encode_checkpoint(model.state_dict(), opt.state_dict(), {"epoch": 3, "history": [{"a": 1.5}]})
        path = write_checkpoint(tmp_path / "c.safetensors", blob, text)
        state, opt_tensors, meta = read_checkpoint(path)
        assert meta["epoch"] == 3 and meta["history"] == [{"a": 1.5}]
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
        fresh = type(opt)(model.parameters(), lr=1.0)
        restored = unflatten_optimizer(opt_tensors, meta["optimizer"], fresh.state_dict())
        fresh.load_state_dict(restored)
        ref = opt.state_dict()
        assert fresh.state_dict()["param_groups"] == ref["param_groups"]
        for pid, st in ref["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(fresh.state_dict()["state"][pid][k]), torch.as_tensor(v))
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ModelError, match="not a readable"):
        read_checkpoint(tmp_path / "m.safetensors")


def test_weights_sha256_names_the_weights_not_their_layout() -> None:
    a = {"w": torch.arange(6.0).view(2, 3), "n": torch.tensor(4)}
    assert weights_sha256(a) == weights_sha256({"n": torch.tensor(4), "w": a["w"].t().contiguous().t()})  # other order and strides
    for other in ({**a, "w": a["w"] + 1e-6}, {**a, "w": a["w"].view(3, 2)}, {**a, "w": a["w"].double()}, {"v": a["w"], "n": a["n"]}):
        assert weights_sha256(other) != weights_sha256(a)


def test_best_checkpoint_is_repaired_from_last_only_when_last_holds_it(tmp_path) -> None:
    """A kill between `last` and `best` leaves best one best epoch behind; `last` then holds it."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def save(name: str, epoch: int, best_epoch: int, best_sha: str | None) -> dict:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        meta = {"epoch": epoch, "early_stopping": {"best_epoch": best_epoch}, "best": {"epoch": best_epoch, "weights_sha256": best_sha}}
        if best_sha is None:
            meta["best"]["weights_sha256"] = weights_sha256(model.state_dict())
        write_checkpoint(tmp_path / f"{name}.safetensors", *encode_checkpoint(model.state_dict(), opt.state_dict(), meta))
        return read_checkpoint_meta(tmp_path / f"{name}.safetensors")

    save("best", 1, 1, None)
    last = save("last", 2, 2, None)  # epoch 2 was the best, but the kill came before best was written
    assert repair_best_checkpoint(tmp_path, last)
    assert read_checkpoint_meta(tmp_path / "best.safetensors") == last
    assert read_checkpoint(tmp_path / "best.safetensors")[0]["weight"].eq(2.0).all()
    assert not repair_best_checkpoint(tmp_path, last)  # consistent now: nothing to do
    # Best is epoch 2 but best holds another and last (epoch 3) is not it: the weights are lost.
    later = save("last", 3, 2, "0" * 64)
    with pytest.raises(ModelError, match=r"holds epoch 2 \(weights [0-9a-f]{12}\), but last says the best is epoch 2 \(weights 000000000000\)"):
        repair_best_checkpoint(tmp_path, later)
    (tmp_path / "best.safetensors").unlink()
    with pytest.raises(ModelError, match="holds epoch None"):
        repair_best_checkpoint(tmp_path, later)


def test_whole_teacher_is_taught_from_the_face_before_degradation() -> None:
    """Under distill.whole_teacher the teachers read the faces before blur, noise, JPEG and
    erasing, the student after; without it both read the degraded faces."""
    from types import SimpleNamespace

    from emolens.preprocessing import PreprocessConfig
    from emolens.training.config import TrainConfig
    from emolens.training.trainer import _step
    from emolens.transforms import AugConfig, create_transform

    seen: list[torch.Tensor] = []

    class Recorder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 7)

    faces = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (8, 48, 48), dtype=np.uint8))
    aug = AugConfig(noise_prob=1.0, jpeg_prob=1.0, erase_prob=1.0)
    x, whole = create_transform(PreprocessConfig(), aug, is_training=True, seed=0).views(faces)
    target = torch.full((8, 7), 1 / 7)
    for whole_teacher, expected in ((True, whole), (False, x)):
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
        parts = SimpleNamespace(
            teachers=[Recorder()], model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), scaler=torch.amp.GradScaler("cpu", enabled=False),
            loss_fn=lambda logits, t: -(t * logits.log_softmax(1)).sum(1).mean(), memory_format=torch.contiguous_format, mix_gen=torch.Generator(),
        )
        cfg = TrainConfig.from_dict({"distill": {"teachers": ["teacher.safetensors"], "whole_teacher": whole_teacher}})
        _step(net, parts, cfg, x, target, None, whole if whole_teacher else None)
        assert torch.equal(seen.pop(), expected)
    assert not torch.allclose(x, whole)


def test_whole_teacher_needs_teachers_and_no_mixing() -> None:
    from emolens.training.config import TrainConfig

    with pytest.raises(ConfigError, match=r"whole_teacher needs distill\.teachers"):
        TrainConfig.from_dict({"distill": {"whole_teacher": True}})
    with pytest.raises(ConfigError, match="teachers' faces unmixed"):
        TrainConfig.from_dict({"distill": {"teachers": ["t.safetensors"], "whole_teacher": True}, "aug": {"mixup_alpha": 0.2}})
