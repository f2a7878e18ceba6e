"""`run_imbalance_study`: one architecture, every class-imbalance strategy, one budget, one table.

Each strategy trains with `emolens.training.train` from the same config, seed and data, for at
most `budget_epochs` epochs; with `patience` > 0 each stops once `schedule.monitor` (e.g.
val_f1) has not improved for that many epochs, so every strategy is measured at its own
validation plateau under the same cap. Its best-on-validation model is measured on the test
split with `emolens.evaluation.evaluate`, the report of `emolens evaluate`. The table
(`study.md`, `study.csv`, `study.json`) gives test accuracy, macro-F1, disgust recall
(FER-2013's rarest class, the one these strategies exist for), validation figures, epochs and time.

Strategies: the trainer's own (none, undersample, oversample, class_weights, focal) and SMOTE /
SMOTE-ENN (`emolens.studies.resampling`), which resample the flattened training faces once and
train plainly (`imbalance.strategy=none`) on the result.

A study folder resumes: `resume=True` on the same folder skips every strategy whose row is
written (`runs/<strategy>/study-row.json`) and continues the one that was running from its last
checkpoint, exactly as `emolens train --resume` does.

Example::

    study = run_imbalance_study("archive.zip", model="simple_cnn", budget_epochs=3,
                                overrides=["schedule.max_steps_per_epoch=40"])
    print(study.to_markdown())
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emolens.errors import ConfigError, DataError
from emolens.studies.resampling import RESAMPLERS

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset
    from emolens.evaluation import EvaluationReport
    from emolens.training import TrainConfig, TrainResult

# The order: doing nothing, then data-side, then loss-side remedies, then resampling.
STRATEGIES: tuple[str, ...] = ("none", "undersample", "oversample", "class_weights", "focal", *RESAMPLERS)

# Keys the study sets itself; an override of one would break the comparison.
_STUDY_KEYS = {
    "imbalance.strategy": "it trains every strategy; pick them with --strategies",
    "schedule.epochs": "the budget is --budget-epochs",
    "schedule.early_stop_patience": "use --patience",
    "run.seed": "use --seed",
    "run.out_dir": "use --out",
    "run.name": "run folders are named after the strategies",
    "data.path": "use --data",
    "model.arch": "use --model",
}

PLAN = "study-plan.json"  # what the study was started with: a resume must match it
ROW = "study-row.json"  # in a strategy's run folder: written last, so its presence means finished

COLUMNS = [
    ("strategy", "strategy", None), ("test_accuracy", "test accuracy", "pct"), ("macro_f1", "macro-F1", "pct"),
    ("disgust_recall", "disgust recall", "pct"), ("balanced_accuracy", "balanced accuracy", "pct"),
    ("val_f1", "val macro-F1", "pct"), ("val_accuracy", "val accuracy", "pct"), ("n_train", "train faces", None),
    ("best_epoch", "best epoch", None), ("epochs", "epochs run", None), ("seconds", "time (s)", "s"), ("cpu_seconds", "CPU time (s)", "s"),
]
# Whether each run reached its plateau: nothing after the best epoch beat it, and the lr had been cut.
PLATEAU_COLUMNS = [
    ("strategy", "strategy", None), ("best_epoch", "best epoch", None), ("epochs", "epochs run", None),
    ("stopped_early", "stopped early", None), ("best_val_f1", "val macro-F1 at best", "pct"),
    ("val_f1_after_best", "best val macro-F1 after it", "pct"), ("first_lr", "lr, epoch 1", None), ("last_lr", "lr, last epoch", None),
]


@dataclass
class StrategyResult:
    """One strategy's finished run: what the table needs, all of it readable back from disk."""

    strategy: str
    run_dir: Path
    model_path: Path
    report: EvaluationReport  # on the test split
    metrics: dict[str, Any]  # the run's best validation figures (TrainResult.metrics)
    history: list[dict[str, Any]]  # one row per epoch run
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    n_train: int  # faces trained on: after resampling, for smote / smote_enn
    seconds: float  # training wall time over every start (the trainer's count) plus resampling
    cpu_seconds: float | None  # CPU time of this process; None when the run was resumed (a part is lost)

    @classmethod
    def from_train(
        cls, strategy: str, result: TrainResult, report: EvaluationReport, n_train: int, seconds: float, cpu_seconds: float | None
    ) -> StrategyResult:
        return cls(
            strategy, result.run_dir, result.model_path, report, dict(result.metrics), list(result.history), result.best_epoch,
            result.epochs_run, result.stopped_early, n_train, seconds, cpu_seconds,
        )

    def save(self) -> Path:
        from emolens.models.io import atomic_write_bytes

        data = {k: v for k, v in asdict(self).items() if k != "report"}
        data.update(run_dir=str(self.run_dir), model_path=str(self.model_path))
        path = self.run_dir / ROW
        atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
        return path

    @classmethod
    def load(cls, run_dir: Path) -> StrategyResult:
        from emolens.evaluation import EvaluationReport

        data = json.loads((run_dir / ROW).read_text())
        report = EvaluationReport.from_json(run_dir / "test-report" / "report.json")
        # The folder it is read from, not the recorded path: a study may be resumed from another
        # working directory, or moved.
        model_path = run_dir / Path(data["model_path"]).name
        return cls(**{**data, "run_dir": Path(run_dir), "model_path": model_path, "report": report})

    def summary(self) -> dict[str, Any]:
        from emolens.evaluation.report import class_recall

        return {
            "strategy": self.strategy,
            "test_accuracy": self.report.accuracy,
            "macro_f1": self.report.macro_f1,
            "disgust_recall": class_recall(self.report, "disgust"),
            "balanced_accuracy": self.report.balanced_accuracy,
            "val_f1": self.metrics.get("val_f1"),
            "val_accuracy": self.metrics.get("val_acc"),
            "n_train": self.n_train,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs_run,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 1),
            "model_path": str(self.model_path),
        }

    def plateau(self) -> dict[str, Any]:
        """The validation curve's shape: the best epoch against the epochs run after it."""
        f1 = [row["val_f1"] for row in self.history]
        after = f1[self.best_epoch:]  # best_epoch is 1-based: the epochs that came after it
        return {
            "strategy": self.strategy, "best_epoch": self.best_epoch, "epochs": self.epochs_run, "stopped_early": self.stopped_early,
            "best_val_f1": f1[self.best_epoch - 1] if f1 else None, "val_f1_after_best": max(after) if after else None,
            "first_lr": f"{self.history[0]['lr']:.2e}" if f1 else None, "last_lr": f"{self.history[-1]['lr']:.2e}" if f1 else None,
            "val_f1_curve": [round(v, 4) for v in f1],
        }


@dataclass
class ImbalanceStudy:
    """The results of `run_imbalance_study`; every export derives from `summary()`."""

    arch: str
    budget_epochs: int
    patience: int
    seed: int
    dataset: str
    config: dict[str, Any]  # the resolved config shared by every strategy (they differ only in imbalance.strategy)
    results: list[StrategyResult] = field(default_factory=list)
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self.results]

    def budget_text(self) -> str:
        s, d = self.config["schedule"], self.config["data"]
        def n(k: int, word: str) -> str:
            return f"{k} {word}" + ("" if k == 1 else "s")

        cap = s["max_steps_per_epoch"]
        steps = f", at most {n(cap, 'step')} of {d['batch_size']} faces per epoch" if cap else f", batches of {d['batch_size']}"
        frac = f", train_fraction {d['train_fraction']}" if d["train_fraction"] < 1 else ""
        stop = (f"early stopping after {n(self.patience, 'epoch')} without a better {s['monitor']}" if self.patience
                else "early stopping off")
        head = f"at most {n(self.budget_epochs, 'epoch')}" if self.patience else n(self.budget_epochs, "epoch")
        return f"{head}{steps}{frac}, seed {self.seed}, {stop}"

    def to_markdown(self) -> str:
        from emolens.evaluation.tables import markdown_table

        m = self.config["model"]
        kwargs = f" {json.dumps(m['kwargs'])}" if m["kwargs"] else ""
        side = m["preprocess"]["input_size"]
        head = (
            f"Class-imbalance strategies for `{self.arch}`{kwargs} at {side}x{side} on `{self.dataset}`. "
            f"Budget per strategy: {self.budget_text()}. Best epoch chosen on val; measured on the test split.\n\n"
        )
        plateau = (
            "\nThe validation curves (every epoch's val macro-F1 is in study.json, `plateau`): the best epoch, and the best "
            "score of the epochs run after it.\n\n"
        )
        return head + markdown_table(self.summary(), COLUMNS) + plateau + markdown_table([r.plateau() for r in self.results], PLATEAU_COLUMNS)

    def to_df(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.summary()).set_index("strategy")


def _check_overrides(overrides: list[str] | None) -> list[str]:
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if key in _STUDY_KEYS:
            raise ConfigError(f"override {text!r}: the imbalance study sets {key} itself ({_STUDY_KEYS[key]})")
    return list(overrides or [])


def _check_strategies(strategies: list[str] | tuple[str, ...]) -> list[str]:
    from emolens.checks import check_names

    return check_names("imbalance strategy", list(strategies), dict.fromkeys(STRATEGIES))


def _strategy_config(base: TrainConfig, strategy: str, runs_dir: Path) -> TrainConfig:
    from emolens.training import load_config

    # SMOTE's rows are made before training; the run itself then trains plainly on them.
    trainer_strategy = "none" if strategy in RESAMPLERS else strategy
    return load_config(overrides=[f"imbalance.strategy={trainer_strategy}", f"run.out_dir={_q(runs_dir)}", f"run.name={strategy}"], base=base)


def _q(value: object) -> str:
    """A literal string for a `key=value` override: YAML must not read 'yes' or '1e3' as other types."""
    return json.dumps(str(value))


def _plan(model: str, budget_epochs: int, patience: int, seed: int, strategies: list[str], base: TrainConfig) -> dict[str, Any]:
    return {"arch": model, "budget_epochs": budget_epochs, "patience": patience, "seed": seed, "strategies": strategies,
            "config": base.to_dict()}


def _open_study(out: str | Path, plan: dict[str, Any], resume: bool) -> Path:
    """The study folder: a fresh one (never a non-empty one), or with `resume` the one at `out`, checked against `plan`."""
    from emolens.models.io import atomic_write_bytes
    from emolens.paths import free_dir

    if not resume:
        out_dir = free_dir(out)
        atomic_write_bytes(out_dir / PLAN, (json.dumps(plan, indent=1) + "\n").encode())
        return out_dir
    out_dir = Path(out)
    if not (out_dir / PLAN).is_file():
        raise ConfigError(f"{out_dir}: nothing to resume, no {PLAN}; is this a folder made by `emolens study imbalance`?")
    # Through JSON, so tuples and lists compare alike.
    saved, now = json.loads((out_dir / PLAN).read_text()), json.loads(json.dumps(plan))
    changed = sorted(k for k in set(saved) | set(now) if k != "config" and saved.get(k) != now.get(k))
    from emolens.training.trainer import _config_diff

    changed += [f"config {k}" for k in _config_diff(saved.get("config", {}), now["config"])]
    if changed:
        raise ConfigError(f"{out_dir}: cannot resume with changed settings ({', '.join(changed)}); start a new study for other settings")
    return out_dir


def _checked_settings(
    path: str, model: str, budget_epochs: int, patience: int, strategies: list[str] | tuple[str, ...],
    config: str | Path | None, overrides: list[str] | None, seed: int,
) -> tuple[list[str], TrainConfig]:
    """The study's strategies and the training config every strategy starts from, checked before any
    data is read: a typo fails in seconds, and is reported as a typo, not as an extra to install."""
    from emolens.models import create_model, list_models
    from emolens.studies.resampling import require_resamplers
    from emolens.training import load_config

    if budget_epochs < 1:
        raise ConfigError(f"budget_epochs must be >= 1, got {budget_epochs}")
    if patience < 0:
        raise ConfigError(f"patience must be >= 0 (0 = every strategy trains the whole budget), got {patience}")
    strategies = _check_strategies(strategies)
    fixed = [f"data.path={_q(path)}", f"model.arch={_q(model)}", f"schedule.epochs={budget_epochs}", f"run.seed={seed}",
             f"schedule.early_stop_patience={patience}"]
    base = load_config(config, [*fixed, *_check_overrides(overrides)])
    if model not in list_models() and ":" not in model:
        create_model(model)  # close-match suggestions
    require_resamplers(strategies)
    return strategies, base


def run_imbalance_study(
    data: str | Path | FaceDataset,
    *,
    model: str = "simple_cnn",
    budget_epochs: int = 3,
    patience: int = 0,
    strategies: list[str] | tuple[str, ...] = STRATEGIES,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    out: str | Path = "runs/study-imbalance",
    seed: int = 0,
    resume: bool = False,
) -> ImbalanceStudy:
    """Train `model` once per strategy on the same budget; evaluate each on test; write the table.

    data: anything `emolens.data.load_dataset` reads, "synthetic", or a FaceDataset.
    budget_epochs: epochs per strategy; with `patience` > 0 the cap, else every strategy trains them all.
    patience: early stopping on `schedule.monitor` (set it with overrides, e.g. "schedule.monitor=val_f1").
    config / overrides: a training config file and `section.key=value` settings applied to
        every strategy (e.g. "schedule.max_steps_per_epoch=40", "data.train_fraction=0.5").
    out: the study folder; a non-empty one is never written into (out-2, ... instead), unless
        `resume`: then `out` must be a study started with the same settings, and it continues.
    """
    from emolens.data import FaceDataset
    from emolens.training import load_training_data

    path = "synthetic" if isinstance(data, FaceDataset) else str(data)
    strategies, base = _checked_settings(path, model, budget_epochs, patience, strategies, config, overrides, seed)
    if resume and not (Path(out) / PLAN).is_file():
        _open_study(out, {}, resume=True)  # the missing plan fails before the data is read

    ds = data if isinstance(data, FaceDataset) else load_training_data(base, progress=base.run.progress)
    if not ds.has_split("test"):
        raise DataError(f"{ds.source or 'dataset'}: has no test split to measure the strategies on")
    out_dir = _open_study(out, _plan(model, budget_epochs, patience, seed, strategies, base), resume)
    study = ImbalanceStudy(
        arch=model, budget_epochs=budget_epochs, patience=patience, seed=seed, dataset=ds.source,
        config=_strategy_config(base, "none", out_dir / "runs").to_dict(), out_dir=out_dir,
    )
    for strategy in strategies:
        run_dir = out_dir / "runs" / strategy
        if (run_dir / ROW).is_file():
            study.results.append(StrategyResult.load(run_dir))  # finished before a restart
        else:
            study.results.append(_run_strategy(strategy, _strategy_config(base, strategy, out_dir / "runs"), ds, run_dir))
        # Rewritten after every strategy, so an interrupted study keeps what it finished.
        _write(study)
    return study


def _run_strategy(strategy: str, cfg: TrainConfig, ds: FaceDataset, run_dir: Path) -> StrategyResult:
    """Train (or resume) one strategy's run, measure it on test, and write its row."""
    from emolens.data.splits import training_rows
    from emolens.evaluation import evaluate
    from emolens.training import train

    t0, c0 = time.perf_counter(), time.process_time()
    train_ds = ds
    if strategy in RESAMPLERS:
        from emolens.studies.resampling import resample_faces

        rows = training_rows(ds, val_fraction=cfg.data.val_fraction, train_fraction=cfg.data.train_fraction, seed=cfg.run.seed)
        train_ds = resample_faces(ds, rows, strategy, seed=cfg.run.seed)
        # The resampled set is the whole train split: the run must not draw train_fraction from it again.
        from emolens.training import load_config

        cfg = load_config(overrides=["data.train_fraction=1.0"], base=cfg)
    resample_seconds = time.perf_counter() - t0
    resumed = (run_dir / "checkpoints" / "last.safetensors").is_file()
    if not resumed and run_dir.exists():
        _clear_unstarted(run_dir)
    result = train(cfg, resume=run_dir if resumed else None, dataset=train_ds)
    if result.run_dir != run_dir:
        raise ConfigError(f"{run_dir}: the run was written to {result.run_dir} instead; the study folder changed under it")
    cpu = None if resumed else time.process_time() - c0
    report = evaluate(result.model_path, ds, split="test", batch_size=cfg.data.eval_batch_size)
    report.save(run_dir / "test-report")
    res = StrategyResult.from_train(strategy, result, report, _n_train(result), result.seconds + resample_seconds, cpu)
    res.save()
    return res


def _n_train(result: TrainResult) -> int:
    from emolens.models import read_model_config

    return int(read_model_config(result.model_path).training.get("data", {}).get("n_train", 0))


def _clear_unstarted(run_dir: Path) -> None:
    """A run killed before its first epoch ended holds only its config: start it again in the same folder."""
    entries = {p.name for p in run_dir.iterdir()}
    if not entries <= {"config.yaml", "checkpoints"} or any((run_dir / "checkpoints").glob("*.safetensors")):
        raise DataError(f"{run_dir}: holds {sorted(entries)} but no checkpoint to resume from; move it away to start this strategy again")
    import shutil

    shutil.rmtree(run_dir)


def _write(study: ImbalanceStudy) -> None:
    from emolens.evaluation.tables import write_table

    assert study.out_dir is not None
    for ext in ("md", "csv", "json"):
        (study.out_dir / f"study.{ext}").unlink(missing_ok=True)  # our own table from the previous strategy
    extra = {"arch": study.arch, "budget": study.budget_text(), "dataset": study.dataset, "config": study.config,
             "plateau": [r.plateau() for r in study.results]}
    study.files = write_table(study.out_dir, "study", study.summary(), study.to_markdown(), extra=extra)
