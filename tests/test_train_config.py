"""TrainConfig: files, overrides, typing, unknown keys, and the `emolens train` CLI wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from emolens.errors import ConfigError
from emolens.training.config import TrainConfig, load_config, parse_override, resolve_config


def test_defaults_round_trip_through_dict_and_yaml(tmp_path: Path) -> None:
    cfg = TrainConfig()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    path = cfg.save(tmp_path / "config.yaml")
    assert load_config(path) == cfg


def test_yaml_and_toml_files_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("optim:\n  name: sgd\n  lr: 3e-2\naug:\n  scale: [0.8, 1.2]\nmodel:\n  kwargs: {dropout: 0.2}\n")
    cfg = load_config(tmp_path / "a.yaml", ["schedule.epochs=7", "aug.hflip=0", "model.preprocess.input_size=44"])
    assert cfg.optim.name == "sgd" and cfg.optim.lr == pytest.approx(0.03)  # "3e-2" is a string in YAML 1.1
    assert cfg.aug.scale == (0.8, 1.2) and isinstance(cfg.aug.scale, tuple)
    assert cfg.model.kwargs == {"dropout": 0.2}
    assert cfg.schedule.epochs == 7 and cfg.aug.hflip == 0.0 and isinstance(cfg.aug.hflip, float)
    assert cfg.model.preprocess.input_size == 44
    (tmp_path / "b.toml").write_text('[imbalance]\nstrategy = "focal"\nfocal_gamma = 1.5\n[run]\nseed = 3\n')
    cfg = load_config(tmp_path / "b.toml")
    assert (cfg.imbalance.strategy, cfg.imbalance.focal_gamma, cfg.run.seed) == ("focal", 1.5, 3)


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [("optim.lrr=0.1", "optim.lr"), ("lr=0.1", "optim.lr"), ("schedule.epoch=3", "schedule.epochs"), ("aug.mixup=0.2", "aug.mixup_alpha")],
)
def test_unknown_keys_are_rejected_with_suggestions(override: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match="unknown config key") as exc:
        load_config(overrides=[override])
    assert suggestion in str(exc.value)


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim:\n  weight_decy: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim\.weight_decy.*optim\.weight_decay"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.name=adamw2", "Did you mean 'adamw'"),
        ("schedule.epochs=two", "must be an integer"),
        ("run.progress=3", "true or false"),
        ("aug.scale=[1.2, 0.8]", "low <= high"),
        ("aug.hflip=1.5", "out of range"),
        ("imbalance.strategy=oversampling", "Did you mean 'oversample'"),
        ("model.preprocess.input_size=64", "larger than image_size"),
        ("optim", "section.key=value"),
    ],
)
def test_bad_values_raise_config_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config(tmp_path / "x.json")


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a.b=some/path.zip") == (["a", "b"], "some/path.zip")


def test_resolve_config_shortcuts_and_resume(tmp_path: Path) -> None:
    cfg = resolve_config(data="1e3", model="simple_cnn", epochs=4, name="x", overrides=["optim.lr=0.01"])
    assert cfg.data.path == "1e3"  # a shortcut is a literal string, never re-read as a number
    assert (cfg.model.arch, cfg.schedule.epochs, cfg.run.name, cfg.optim.lr) == ("simple_cnn", 4, "x", 0.01)
    run = tmp_path / "run"
    run.mkdir()
    load_config(overrides=["optim.lr=0.5"]).save(run / "config.yaml")
    cfg = resolve_config(resume=run, epochs=9)
    assert cfg.optim.lr == 0.5 and cfg.schedule.epochs == 9
    with pytest.raises(ConfigError, match="not both"):
        resolve_config(tmp_path / "a.yaml", resume=run)
    with pytest.raises(ConfigError, match=r"no config\.yaml"):
        resolve_config(resume=tmp_path)


def test_cli_hands_arguments_to_the_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import emolens.training
    from emolens.cli import main

    seen = {}

    def fake_train(config, *, resume=None):
        seen["config"], seen["resume"] = config, resume
        raise ConfigError("stop here")

    monkeypatch.setattr(emolens.training, "train", fake_train)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("optim:\n  name: sgd\n")
    code = main(["train", str(cfg_file), "--data", "synthetic", "--model", "simple_cnn", "--epochs", "2", "--name", "n",
                 "--set", "optim.lr=0.02", "--set", "aug.enabled=false"])
    assert code == 1
    cfg = seen["config"]
    assert (cfg.optim.name, cfg.optim.lr, cfg.data.path, cfg.model.arch, cfg.schedule.epochs, cfg.run.name, cfg.aug.enabled) == (
        "sgd", 0.02, "synthetic", "simple_cnn", 2, "n", False)
    assert seen["resume"] is None


def test_cli_reports_config_errors_and_shows_config(capsys: pytest.CaptureFixture[str]) -> None:
    from emolens.cli import main

    assert main(["train", "--set", "optim.lrr=1"]) == 1
    assert "did you mean optim.lr" in capsys.readouterr().err.lower()
    assert main(["train", "--show-config", "--set", "optim.lr=0.125"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.125" in out and TrainConfig.from_dict(__import__("yaml").safe_load(out)).optim.lr == 0.125


def test_shipped_presets_load() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs"
    presets = sorted(configs.glob("*.yaml"))
    assert presets, "configs/ should ship presets"
    for preset in presets:
        load_config(preset)
