"""Studies: one question, several training runs on one budget, one table.

    >>> from emolens.studies import run_imbalance_study
    >>> study = run_imbalance_study("archive.zip", model="simple_cnn", budget_epochs=3)  # doctest: +SKIP
    >>> print(study.to_markdown())                                                       # doctest: +SKIP
"""

from emolens.studies.imbalance import STRATEGIES, ImbalanceStudy, StrategyResult, run_imbalance_study

__all__ = ["STRATEGIES", "ImbalanceStudy", "StrategyResult", "run_imbalance_study"]
