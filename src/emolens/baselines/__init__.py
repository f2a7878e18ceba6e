"""Classic baselines: HOG or PCA features with SVM, random-forest or MLP classifiers.

They read the same faces through the same preprocessing as the networks, are measured with
the same `EvaluationReport`, and are saved as safetensors + JSON (no pickle).

    >>> from emolens.baselines import run_baselines, load_baseline
    >>> cmp = run_baselines("archive.zip", features=["hog"], classifiers=["linear_svm", "mlp"])  # doctest: +SKIP
    >>> load_baseline(cmp.runs[0].model_path).predict_proba(faces)                               # doctest: +SKIP
"""

from emolens.baselines.classifiers import CLASSIFIERS
from emolens.baselines.features import FEATURES
from emolens.baselines.model import BaselineModel, load_baseline
from emolens.baselines.params import parse_param_overrides
from emolens.baselines.run import BaselineComparison, BaselineRun, evaluate_baseline, run_baselines

__all__ = [
    "CLASSIFIERS", "FEATURES", "BaselineComparison", "BaselineModel", "BaselineRun", "evaluate_baseline",
    "load_baseline", "parse_param_overrides", "run_baselines",
]
