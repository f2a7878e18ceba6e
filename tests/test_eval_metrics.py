"""Metrics and calibration against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emolens.errors import ConfigError, DataError
from emolens.evaluation import (
    classification_metrics,
    expected_calibration_error,
    fit_class_bias,
    fit_temperature,
    macro_f1_score,
    reliability_bins,
    temperature_nll,
)
from emolens.inference import softmax_with_temperature

CLASSES = ("a", "b", "c")


def _one_hot_probs(pred: list[int], n_cls: int = 3, p: float = 0.8) -> np.ndarray:
    probs = np.full((len(pred), n_cls), (1 - p) / (n_cls - 1))
    probs[np.arange(len(pred)), pred] = p
    return probs


def test_metrics_match_hand_computed_confusion():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y_true, _one_hot_probs(y_pred), CLASSES)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recall: a 2/3, b 1/2, c 1/1; precision: a 2/2, b 1/2, c 1/2
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    per = {r["class"]: r for r in m["per_class"]}
    assert per["a"]["precision"] == pytest.approx(1.0) and per["a"]["recall"] == pytest.approx(2 / 3)
    assert per["a"]["f1"] == pytest.approx(0.8)
    assert per["b"]["f1"] == pytest.approx(0.5)
    assert per["c"]["precision"] == pytest.approx(0.5) and per["c"]["f1"] == pytest.approx(2 / 3)
    assert [per[c]["support"] for c in CLASSES] == [3, 2, 1]
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # Every sample puts 0.8 on its predicted class and 0.1 elsewhere.
    assert m["nll"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)


def test_macro_f1_averages_every_class_of_the_model():
    # Class c is neither in the truth nor predicted: its F1 is 0, and macro-F1 is the mean of
    # the per-class column over all three classes, as sklearn's f1_score(labels=range(C),
    # zero_division=0). (It used to average only the classes seen, giving 1.0, while
    # calibration's copy gave 2/3 and the trainer's the former: one answer now.)
    m = classification_metrics([0, 1, 0, 1], _one_hot_probs([0, 1, 0, 1]), CLASSES)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in m["per_class"]]))
    assert m["balanced_accuracy"] == pytest.approx(1.0)
    assert m["per_class"][2]["support"] == 0 and m["confusion"][2] == [0, 0, 0]


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(DataError, match=r"shaped \(2, 3\)"):
        classification_metrics([0, 1], np.ones((3, 3)) / 3, CLASSES)


def test_ece_hand_computed():
    # Two faces at confidence 0.9 (one right, one wrong), two at 0.6 (both right), 10 bins:
    # bin (0.8, 0.9]: |0.5 - 0.9| * 2/4 = 0.2 ; bin (0.5, 0.6]: |1.0 - 0.6| * 2/4 = 0.2
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4)
    bins = reliability_bins(probs, labels, n_bins=10)
    assert bins["count"] == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]
    assert bins["accuracy"][8] == pytest.approx(0.5) and bins["confidence"][5] == pytest.approx(0.6)
    assert bins["accuracy"][0] is None


def test_ece_is_zero_for_confident_correct_predictions():
    probs = np.eye(3)[[0, 1, 2, 2]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 2])) == 0.0


def test_ece_rejects_logits_and_bad_bins():
    with pytest.raises(DataError, match="probs must lie in"):
        expected_calibration_error(np.array([[3.0, -1.0]]), np.array([0]))
    with pytest.raises(ConfigError, match="n_bins"):
        expected_calibration_error(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0)


def _synthetic_logits(n: int = 6000, n_cls: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution, and labels drawn from it."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0.0, 2.0, size=(n, n_cls))
    p = softmax_with_temperature(true_logits, 1.0).astype(np.float64)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return true_logits, labels


def test_fit_temperature_recovers_known_temperature_and_lowers_ece():
    true_logits, labels = _synthetic_logits()
    overconfident = true_logits * 3.0
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.08)
    before = expected_calibration_error(softmax_with_temperature(overconfident, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(overconfident, t), labels)
    assert after < before / 3
    assert temperature_nll(overconfident, labels, t) < temperature_nll(overconfident, labels, 1.0)
    # Already calibrated logits keep T near 1; under-confident ones get T < 1.
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, abs=0.08)
    assert fit_temperature(true_logits / 2.0, labels) == pytest.approx(0.5, rel=0.08)


def test_fit_temperature_validates_input():
    with pytest.raises(DataError, match="labels must lie in"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(DataError, match="non-finite"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(DataError, match="empty"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_fit_temperature_warns_when_logits_carry_no_information():
    logits = np.random.default_rng(0).normal(size=(500, 7))
    labels = logits.argmin(axis=1)  # always wrong: the uniform guess (T -> inf) is the best it can do
    with pytest.warns(RuntimeWarning, match="edge of the search range"):
        assert fit_temperature(logits, labels) == pytest.approx(100.0, rel=1e-2)


def test_macro_f1_score_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from emolens.evaluation.metrics import macro_f1_from_confusion

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    p[p == 3] = 2  # a class never predicted scores F1 0, as in scikit-learn
    y[y == 4], p[p == 4] = 0, 1  # a class neither in the truth nor predicted scores 0 too
    expected = f1_score(y, p, average="macro", labels=range(5), zero_division=0)
    assert macro_f1_score(y, p, 5) == pytest.approx(expected)
    cm = np.zeros((5, 5))
    np.add.at(cm, (y, p), 1)
    assert macro_f1_from_confusion(cm) == pytest.approx(expected)  # the trainer's path, from summed counts


def _skewed_logits(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # Class 2 is learned fine but its logit sits 1.5 too low, as for an under-predicted class.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    z = rng.normal(0, 1, (n, 3))
    z[np.arange(n), y] += 2.0
    z[:, 2] -= 1.5
    return z, y


def test_fit_class_bias_undoes_a_known_logit_shift():
    z, y = _skewed_logits()
    b = fit_class_bias(z, y)
    assert b.sum() == pytest.approx(0.0, abs=1e-9)
    assert b[2] - b[:2].mean() == pytest.approx(1.5, abs=0.35)
    before, after = z.argmax(1), (z + b).argmax(1)
    assert macro_f1_score(y, after, 3) > macro_f1_score(y, before, 3) + 0.05
    # min_recall lifts a rare class (10% of faces) that macro-F1 alone leaves at 56% recall.
    rng = np.random.default_rng(1)
    y2 = rng.choice(3, 3000, p=[0.45, 0.45, 0.1])
    z2 = rng.normal(0, 1, (3000, 3))
    z2[np.arange(3000), y2] += 1.5
    recall = lambda p, c: (p[y2 == c] == c).mean()  # noqa: E731
    plain = (z2 + fit_class_bias(z2, y2)).argmax(1)
    lifted = (z2 + fit_class_bias(z2, y2, min_recall=0.7)).argmax(1)
    assert recall(plain, 2) < 0.6 and min(recall(lifted, c) for c in range(3)) >= 0.7
    with pytest.raises(ConfigError, match="min_recall"):
        fit_class_bias(z, y, min_recall=1.5)


def test_add_class_bias_folds_offsets_into_the_classifier():
    import torch

    from emolens.models import ModelConfig, add_class_bias, build_model

    net = build_model(ModelConfig(arch="simple_cnn")).eval()
    x = torch.randn(4, 1, 48, 48)
    offsets = np.linspace(-1, 1, 7)
    with torch.no_grad():
        before = net(x)
        after = add_class_bias(net, offsets)(x)
    assert torch.allclose(after - before, torch.tensor(offsets, dtype=torch.float32).expand(4, 7), atol=1e-5)
    with pytest.raises(Exception, match="7 values"):
        add_class_bias(net, [0.0, 1.0])
