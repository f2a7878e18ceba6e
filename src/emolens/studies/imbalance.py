"""`run_imbalance_study`: one architecture, every class-imbalance strategy, one budget, one table.

Each strategy trains with `emolens.training.train` from the same config, seed and data, for
exactly `budget_epochs` epochs (early stopping off, so no strategy gets a different budget),
and its best-on-validation model is measured on the test split with
`emolens.evaluation.evaluate`, the report of `emolens evaluate`. The table (`study.md`,
`study.csv`, `study.json`) gives test accuracy, macro-F1, disgust recall (FER-2013's rarest
class, the one these strategies exist for), validation accuracy, epochs and time.

Example::

    study = run_imbalance_study("archive.zip", model="simple_cnn", budget_epochs=3,
                                overrides=["schedule.max_steps_per_epoch=40"])
    print(study.to_markdown())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emolens.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset
    from emolens.evaluation import EvaluationReport
    from emolens.training import TrainConfig, TrainResult

# The order: doing nothing, then data-side, then loss-side remedies.
STRATEGIES: tuple[str, ...] = ("none", "undersample", "oversample", "class_weights", "focal")

# Keys the study sets itself; an override of one would break the comparison.
_STUDY_KEYS = {
    "imbalance.strategy": "it trains every strategy; pick them with --strategies",
    "schedule.epochs": "the budget is --budget-epochs",
    "run.seed": "use --seed",
    "run.out_dir": "use --out",
    "run.name": "run folders are named after the strategies",
    "data.path": "use --data",
    "model.arch": "use --model",
}

COLUMNS = [
    ("strategy", "strategy", None), ("test_accuracy", "test accuracy", "pct"), ("macro_f1", "macro-F1", "pct"),
    ("disgust_recall", "disgust recall", "pct"), ("val_accuracy", "val accuracy", "pct"), ("epochs", "epochs", None),
    ("seconds", "time (s)", "s"), ("cpu_seconds", "CPU time (s)", "s"),
]


@dataclass
class StrategyResult:
    strategy: str
    train: TrainResult
    report: EvaluationReport
    seconds: float  # training wall time, including per-epoch validation and temperature fitting
    cpu_seconds: float  # CPU time of this process over the same span: comparable on a shared machine

    def summary(self) -> dict[str, Any]:
        from emolens.baselines.report import class_recall

        return {
            "strategy": self.strategy,
            "test_accuracy": self.report.accuracy,
            "macro_f1": self.report.macro_f1,
            "disgust_recall": class_recall(self.report, "disgust"),
            "balanced_accuracy": self.report.balanced_accuracy,
            "val_accuracy": self.train.metrics.get("val_acc"),
            "epochs": self.train.epochs_run,
            "best_epoch": self.train.best_epoch,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "model_path": str(self.train.model_path),
        }


@dataclass
class ImbalanceStudy:
    """The results of `run_imbalance_study`; every export derives from `summary()`."""

    arch: str
    budget_epochs: int
    seed: int
    dataset: str
    n_train: int
    config: dict[str, Any]  # the resolved config of the first strategy (they differ only in imbalance.strategy)
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
        return f"{n(self.budget_epochs, 'epoch')}{steps}{frac}, seed {self.seed}, early stopping off"

    def to_markdown(self) -> str:
        from emolens.baselines.table import markdown_table

        head = (
            f"Class-imbalance strategies for `{self.arch}` on `{self.dataset}` ({self.n_train} train faces). "
            f"Budget per strategy: {self.budget_text()}. Best epoch chosen on val; measured on the test split.\n\n"
        )
        return head + markdown_table(self.summary(), COLUMNS)

    def to_df(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.summary()).set_index("strategy")


def _check_overrides(overrides: list[str] | None) -> list[str]:
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if key in _STUDY_KEYS:
            raise ConfigError(f"override {text!r}: the imbalance study sets {key} itself ({_STUDY_KEYS[key]})")
    return list(overrides or [])


def _strategy_config(base: TrainConfig, strategy: str, runs_dir: Path) -> TrainConfig:
    from emolens.training import load_config

    return load_config(overrides=[f"imbalance.strategy={strategy}", f"run.out_dir={_q(runs_dir)}", f"run.name={strategy}"], base=base)


def _q(value: object) -> str:
    """A literal string for a `key=value` override: YAML must not read 'yes' or '1e3' as other types."""
    import json

    return json.dumps(str(value))


def run_imbalance_study(
    data: str | Path | FaceDataset,
    *,
    model: str = "simple_cnn",
    budget_epochs: int = 3,
    strategies: list[str] | tuple[str, ...] = STRATEGIES,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    out: str | Path = "runs/study-imbalance",
    seed: int = 0,
) -> ImbalanceStudy:
    """Train `model` once per strategy on the same budget; evaluate each on test; write the table.

    data: anything `emolens.data.load_dataset` reads, "synthetic", or a FaceDataset.
    config / overrides: a training config file and `section.key=value` settings applied to
        every strategy (e.g. "schedule.max_steps_per_epoch=40", "data.train_fraction=0.5").
    out: the study folder; a non-empty one is never written into (out-2, ... instead).
    """
    from emolens.data import FaceDataset
    from emolens.evaluation import evaluate
    from emolens.paths import free_dir
    from emolens.training import load_config, load_training_data, train
    from emolens.training.config import IMBALANCE

    if budget_epochs < 1:
        raise ConfigError(f"budget_epochs must be >= 1, got {budget_epochs}")
    strategies = list(dict.fromkeys(strategies))
    if not strategies:
        raise ConfigError(f"give at least one strategy; known: {', '.join(STRATEGIES)}")
    for s in strategies:
        if s not in IMBALANCE:
            from difflib import get_close_matches

            close = get_close_matches(s, IMBALANCE, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown imbalance strategy {s!r}.{hint} Known: {', '.join(IMBALANCE)}")
    path = "synthetic" if isinstance(data, FaceDataset) else str(data)
    fixed = [f"data.path={_q(path)}", f"model.arch={_q(model)}", f"schedule.epochs={budget_epochs}", f"run.seed={seed}", "schedule.early_stop_patience=0"]
    base = load_config(config, [*fixed, *_check_overrides(overrides)])
    if base.schedule.early_stop_patience:
        raise ConfigError("schedule.early_stop_patience must stay 0 in a study: every strategy gets the whole budget")
    from emolens.models import create_model, list_models

    if model not in list_models() and ":" not in model:
        create_model(model)  # fails before the data is read, with close-match suggestions

    ds = data if isinstance(data, FaceDataset) else load_training_data(base, progress=base.run.progress)
    if not ds.has_split("test"):
        raise DataError(f"{ds.source or 'dataset'}: has no test split to measure the strategies on")
    out_dir = free_dir(out)
    study = ImbalanceStudy(
        arch=model, budget_epochs=budget_epochs, seed=seed, dataset=ds.source, n_train=0,
        config=_strategy_config(base, strategies[0], out_dir / "runs").to_dict(), out_dir=out_dir,
    )
    for strategy in strategies:
        cfg = _strategy_config(base, strategy, out_dir / "runs")
        t0, c0 = time.perf_counter(), time.process_time()
        result = train(cfg, dataset=ds)
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        report = evaluate(result.model_path, ds, split="test", batch_size=cfg.data.eval_batch_size)
        report.save(result.run_dir / "test-report")
        study.n_train = _n_train(result)
        study.results.append(StrategyResult(strategy, result, report, seconds, cpu_seconds))
        # Rewritten after every strategy, so an interrupted study keeps what it finished.
        _write(study)
    return study


def _n_train(result: TrainResult) -> int:
    from emolens.models import read_model_config

    return int(read_model_config(result.model_path).training.get("data", {}).get("n_train", 0))


def _write(study: ImbalanceStudy) -> None:
    from emolens.baselines.table import write_table

    assert study.out_dir is not None
    for ext in ("md", "csv", "json"):
        (study.out_dir / f"study.{ext}").unlink(missing_ok=True)  # our own table from the previous strategy
    extra = {"arch": study.arch, "budget": study.budget_text(), "dataset": study.dataset, "config": study.config}
    study.files = write_table(study.out_dir, "study", study.summary(), study.to_markdown(), extra=extra)
