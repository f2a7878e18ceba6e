"""timm models as "timm:NAME": grayscale input, local safetensors weights, frozen-then-unfrozen.

Where timm imports (it needs torchvision built for the installed torch), the last test runs a
real small timm model end to end offline. The others run everywhere: they stand in for timm
with a tiny network that has timm's interface (`create_model`, `is_model`, `get_classifier`,
`pretrained_cfg`), so everything emolens adds around timm is checked on every machine.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from safetensors.torch import load_file, save_file

import emolens.models.timm_adapter as ta
from emolens.data.synthetic import make_synthetic_dataset
from emolens.errors import ConfigError, ModelError
from emolens.models import create_model, load_model
from emolens.training import load_config
from emolens.training.finetune import finetune


class TinyTimmNet(nn.Module):
    """A timm-shaped network: conv stem, BatchNorm, pooled features, `fc` classifier."""

    def __init__(self, in_chans: int = 3, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, num_classes)
        self.pretrained_cfg = {"first_conv": "conv1", "classifier": "fc"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 16)
        return torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x))))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc


def _fake_timm() -> types.SimpleNamespace:
    calls = []

    def create(name, pretrained=False, num_classes=1000, in_chans=3, **kwargs):
        calls.append({"name": name, "pretrained": pretrained, "num_classes": num_classes, "in_chans": in_chans, **kwargs})
        if pretrained:
            raise AssertionError("a test asked timm to download weights")
        return TinyTimmNet(in_chans, num_classes)

    return types.SimpleNamespace(create_model=create, is_model=lambda n: n == "tiny", list_models=lambda: ["tiny", "resnet18"], calls=calls)


@pytest.fixture
def fake_timm(monkeypatch):
    fake = _fake_timm()
    monkeypatch.setattr(ta, "import_timm", lambda: fake)
    return fake


@pytest.fixture
def rgb_weights(tmp_path):
    """ImageNet-style weights of the same architecture: 3 input channels, 1000 classes."""
    torch.manual_seed(0)
    net = TinyTimmNet(3, 1000)
    path = tmp_path / "imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net


def test_missing_timm_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'emolens\[timm\]'.*torchvision"):
        create_model("timm:resnet18", num_classes=7)


def test_prefix_builds_a_grayscale_timm_model_offline(fake_timm):
    model = create_model("timm:tiny", num_classes=7, input_size=48)
    assert model.conv1.in_channels == 1 and model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    assert fake_timm.calls == [{"name": "tiny", "pretrained": False, "num_classes": 7, "in_chans": 1}]
    with pytest.raises(ModelError, match="Did you mean 'timm:resnet18'"):
        create_model("timm:resnet19", num_classes=7)


def test_pretrained_rgb_weights_are_folded_to_gray(fake_timm, rgb_weights):
    path, rgb = rgb_weights
    model = create_model("timm:tiny", num_classes=7)
    info = ta.load_pretrained(model, path)
    assert info["adapted_to_gray"] == ["conv1.weight"] and set(info["not_used"]) == {"fc.weight", "fc.bias"}
    model.eval()
    rgb.eval()
    x = torch.rand(3, 1, 48, 48)
    # A gray face through the folded conv = the same face repeated on R, G, B through the original.
    torch.testing.assert_close(model.forward_features(x), rgb.forward_features(x.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)


def test_pretrained_refuses_pickles_and_other_architectures(fake_timm, tmp_path):
    model = create_model("timm:tiny", num_classes=7)
    (tmp_path / "w.pth").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="pickles"):
        ta.load_pretrained(model, tmp_path / "w.pth")
    save_file({"conv1.weight": torch.zeros(8, 3, 5, 5)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="do not fit"):
        ta.load_pretrained(model, tmp_path / "other.safetensors")
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3)}, str(tmp_path / "part.safetensors"))
    with pytest.raises(ModelError, match="weights lack"):
        ta.load_pretrained(model, tmp_path / "part.safetensors")


def test_freeze_leaves_only_the_classifier_trainable(fake_timm):
    model = create_model("timm:tiny", num_classes=7)
    n = ta.freeze_backbone(model)
    assert n == 16 * 7 + 7
    assert [k for k, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


def _config(tmp_path, epochs=2):
    return load_config(overrides=[
        "model.arch=timm:tiny", f"schedule.epochs={epochs}", "schedule.max_steps_per_epoch=2", "schedule.warmup_epochs=0",
        "data.batch_size=8", "run.progress=false", "run.plots=false", f"run.out_dir={tmp_path / 'runs'}", "run.name=ft",
    ])


def test_finetune_freezes_then_unfreezes(fake_timm, rgb_weights, tmp_path):
    path, rgb = rgb_weights
    ds = make_synthetic_dataset(n_per_class=6, seed=0)
    result = finetune(_config(tmp_path), pretrained=path, freeze_epochs=1, unfrozen_lr_scale=0.1, dataset=ds)
    frozen_dir, final_dir = tmp_path / "runs" / "ft-frozen", tmp_path / "runs" / "ft"
    assert result.run_dir == final_dir and (frozen_dir / "best.safetensors").is_file()
    folded = rgb.state_dict()["conv1.weight"].sum(1, keepdim=True)
    phase1 = load_file(str(frozen_dir / "best.safetensors"))
    torch.testing.assert_close(phase1["conv1.weight"], folded)  # frozen: the pretrained stem is untouched
    torch.testing.assert_close(phase1["conv2.weight"], rgb.state_dict()["conv2.weight"])
    final = load_file(str(final_dir / "best.safetensors"))
    assert not torch.equal(final["conv1.weight"], phase1["conv1.weight"])  # unfrozen: every layer trains
    cfg2 = yaml.safe_load((final_dir / "config.yaml").read_text())
    assert cfg2["optim"]["lr"] == pytest.approx(1e-4) and cfg2["schedule"]["epochs"] == 1
    assert result.metrics["finetune"]["freeze_epochs"] == 1 and result.metrics["finetune"]["source"] == str(frozen_dir / "best.safetensors")
    frozen = result.metrics["finetune"]["frozen_phase"]  # phase 1 loaded the user's RGB file, folded to gray, froze all but fc
    assert frozen["source"] == str(path) and frozen["adapted_to_gray"] == ["conv1.weight"] and frozen["trainable"] == 16 * 7 + 7
    # The model file names no weights file: it reloads anywhere timm is installed.
    model = load_model(result.model_path)
    assert model.emolens_config.arch == "timm:tiny" and model.emolens_config.arch_kwargs == {}
    with torch.no_grad():
        probs = torch.softmax(model(torch.zeros(1, 1, 48, 48)), 1)
    assert probs.shape == (1, 7) and np.isclose(float(probs.sum()), 1.0)
    assert not any(c["pretrained"] for c in fake_timm.calls)  # nothing was downloaded


def test_finetune_checks_its_options(fake_timm, tmp_path):
    with pytest.raises(ConfigError, match="freeze_epochs must be in"):
        finetune(_config(tmp_path), freeze_epochs=2)
    with pytest.raises(ConfigError, match=r"expected an existing \.safetensors"):
        finetune(_config(tmp_path), pretrained=tmp_path / "nope.safetensors")
    with pytest.raises(ConfigError, match="timm models named"):
        finetune(load_config(overrides=["model.arch=simple_cnn"]))


def _timm_or_reason() -> str | None:
    try:
        import timm  # noqa: F401
    except Exception as exc:
        return f"timm does not import here ({exc.__class__.__name__}: {exc}); install the timm extra, with a torchvision built for this torch"
    return None


@pytest.mark.skipif(_timm_or_reason() is not None, reason=_timm_or_reason() or "")
@pytest.mark.filterwarnings("ignore:fitted temperature")  # two steps of training leave the logits uninformative
def test_real_timm_model_finetunes_offline_from_local_weights(tmp_path, monkeypatch, capsys, one_torch_thread):
    """`emolens finetune --pretrained PATH` on a real timm resnet10t, ImageNet-shaped weights made here."""
    import timm
    import timm.models._builder

    from emolens.cli import main

    def no_download(*args, **kwargs):
        raise AssertionError("timm tried to load hub weights")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", no_download)  # what pretrained=True would call
    torch.manual_seed(0)
    src = timm.create_model("resnet10t", pretrained=False, num_classes=1000, in_chans=3)  # RGB stem, ImageNet head
    path = tmp_path / "resnet10t-local.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    out = tmp_path / "runs"
    args = ["finetune", "--data", "synthetic", "--model", "timm:resnet10t", "--epochs", "2", "--freeze-epochs", "1", "--pretrained", str(path),
            "--unfrozen-lr-scale", "0.5", "--name", "real"]
    sets = ["data.synthetic_per_class=4", "data.batch_size=8", "schedule.max_steps_per_epoch=2", "schedule.warmup_epochs=0",
            "run.progress=false", "run.plots=false", f"run.out_dir={out}"]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0
    out_text = capsys.readouterr().out
    summary = json.loads(out_text[out_text.index("{\n"):])  # the run summary the command prints last
    frozen = summary["finetune"]["frozen_phase"]
    assert frozen["source"] == str(path) and frozen["adapted_to_gray"] == ["conv1.0.weight"] and frozen["trainable"] == 512 * 7 + 7

    stem, head = "conv1.0.weight", {"fc.weight", "fc.bias"}
    folded = src.state_dict()[stem].sum(1, keepdim=True)  # (24, 3, 3, 3) -> (24, 1, 3, 3)
    phase1 = load_file(str(out / "real-frozen" / "best.safetensors"))
    assert phase1[stem].shape == (24, 1, 3, 3)
    torch.testing.assert_close(phase1[stem], folded)  # grayscale: RGB kernels summed, then frozen
    params = {n for n, _ in src.named_parameters()} - head
    for n in params:  # frozen phase: every backbone parameter is exactly the loaded one
        if n != stem:
            torch.testing.assert_close(phase1[n], src.state_dict()[n], msg=n)
    assert phase1["fc.weight"].shape == (7, 512)
    final = load_file(str(out / "real" / "best.safetensors"))
    assert any(not torch.equal(final[n], phase1[n]) for n in params)  # unfrozen phase: the backbone trains
    cfg2 = yaml.safe_load((out / "real" / "config.yaml").read_text())
    assert cfg2["optim"]["lr"] == pytest.approx(5e-4) and cfg2["model"]["arch"] == "timm:resnet10t"

    model = load_model(out / "real" / "best.safetensors")  # the saved model names no weights file
    with torch.no_grad():
        probs = torch.softmax(model(torch.rand(2, 1, 48, 48)), 1)
    assert probs.shape == (2, 7) and torch.allclose(probs.sum(1), torch.ones(2))
