"""The classifiers of the classic baselines, fitted with scikit-learn, predicted with numpy.

Each classifier is fitted by scikit-learn and then reduced to its learned arrays (an SVM's
weights, a forest's node tables, an MLP's layers); prediction is re-done here from those
arrays, so a saved model is loaded from a safetensors file without unpickling anything.
`tests/test_baselines.py` checks that these predictions equal scikit-learn's own.

Every classifier returns logits over the full label set (N, C): decision values for SVMs,
log-probabilities for the forest, pre-softmax activations for the MLP. The baseline then
fits a softmax temperature on validation, as `emolens train` does for networks, so all
probabilities in a report are calibrated the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from emolens.baselines.arrays import take
from emolens.baselines.params import merge_params
from emolens.errors import ConfigError, ModelError

_ABSENT = -30.0  # logit offset for a class with no training face: probability ~1e-13, finite for NLL


def expand_logits(scores: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Scores over the classes seen in training -> logits over all `n_classes`."""
    if len(present) == n_classes:
        return scores.astype(np.float32)
    out = np.empty((len(scores), n_classes), np.float32)
    out[:] = (scores.min(axis=1, keepdims=True) if scores.size else 0.0) + _ABSENT
    out[:, present] = scores
    return out


def _present(y: np.ndarray, n_classes: int) -> np.ndarray:
    present = np.unique(y)
    if len(present) < 2:
        raise ConfigError(f"the training faces hold {len(present)} class(es); a classifier needs at least 2")
    if present.min() < 0 or present.max() >= n_classes:
        raise ConfigError(f"labels must be in [0, {n_classes}), got [{present.min()}, {present.max()}]")
    return present


class _Classifier:
    name: ClassVar[str]
    DEFAULTS: ClassVar[dict[str, Any]]

    def __init__(self, params: dict[str, Any] | None = None):
        self.params = merge_params(self.name, self.DEFAULTS, params)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise ModelError(f"{self.name} is not fitted; call fit() first")

    def logits(self, z: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return expand_logits(self._scores(np.asarray(z, np.float32)), self.classes_, self.n_classes_)

    def _scores(self, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_classes(self, present: np.ndarray, n_classes: int) -> None:
        self.classes_ = present.astype(np.int64)
        self.n_classes_ = int(n_classes)

    def _classes_from(self, arrays: dict[str, np.ndarray], n_classes: int) -> None:
        present = take(arrays, "classes", 1, kind="i")
        if len(present) < 2 or len(np.unique(present)) != len(present) or present.min() < 0 or present.max() >= n_classes:
            raise ModelError(f"array 'classes' {present.tolist()} is not a set of at least 2 class indices below {n_classes}")
        self._set_classes(present, n_classes)


class LinearSvm(_Classifier):
    """One-vs-rest linear SVM (LinearSVC): the fast, strong default on HOG."""

    name = "linear_svm"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "C": 0.001,  # best of 0.001 / 0.01 / 0.1 on FER-2013 val with HOG (43.9 / 43.2 / 43.4%): labels are noisy
        "max_iter": 2000,  # liblinear converges well within this at C <= 0.1
    }

    def fit(self, z: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> LinearSvm:
        from sklearn.svm import LinearSVC

        _present(y, n_classes)
        svc = LinearSVC(C=self.params["C"], max_iter=self.params["max_iter"], dual="auto", random_state=seed).fit(z, y)
        self.from_sklearn(svc, n_classes)
        return self

    def from_sklearn(self, svc: Any, n_classes: int) -> LinearSvm:
        self._set_classes(np.asarray(svc.classes_), n_classes)
        coef, intercept = np.asarray(svc.coef_, np.float64), np.asarray(svc.intercept_, np.float64)
        if len(self.classes_) == 2:  # binary: one hyperplane, positive side = second class
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        self.coef_, self.intercept_ = coef, intercept
        return self

    def _scores(self, z: np.ndarray) -> np.ndarray:
        return z.astype(np.float64) @ self.coef_.T + self.intercept_

    def arrays(self) -> dict[str, np.ndarray]:
        return {"classes": self.classes_, "coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], n_classes: int, n_features: int) -> LinearSvm:
        self = cls(params)
        self._classes_from(arrays, n_classes)
        k = len(self.classes_)
        self.coef_ = take(arrays, "coef", 2, shape=(k, n_features))
        self.intercept_ = take(arrays, "intercept", 1, shape=(k,))
        return self


class RbfSvm(_Classifier):
    """An RBF-kernel SVM, approximated: Nystroem features, then a linear SVM.

    An exact SVC on 28k faces costs O(n^2) kernel evaluations (hours on a small CPU); the
    Nystroem map with a few thousand landmarks gives most of the kernel's gain in minutes.
    """

    name = "rbf_svm"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "C": 0.1,
        "n_components": 1500,  # Nystroem landmarks; memory is n_faces x n_components float32
        "gamma": 0.0,  # RBF width; 0 = 1 / n_features, right for standardised features
        "max_iter": 2000,
    }

    def fit(self, z: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> RbfSvm:
        from sklearn.kernel_approximation import Nystroem

        _present(y, n_classes)
        gamma = self.params["gamma"] or 1.0 / z.shape[1]
        k = min(self.params["n_components"], len(z))
        ny = Nystroem(kernel="rbf", gamma=gamma, n_components=k, random_state=seed).fit(z)
        self.gamma_ = float(gamma)
        self.landmarks_ = np.asarray(ny.components_, np.float64)
        self.normalization_ = np.asarray(ny.normalization_, np.float64)
        self.svm_ = LinearSvm({"C": self.params["C"], "max_iter": self.params["max_iter"]}).fit(self._map(z), y, n_classes, seed)
        self._set_classes(self.svm_.classes_, n_classes)
        return self

    def _map(self, z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64)
        out = np.empty((len(z), len(self.landmarks_)), np.float32)
        sq_l = (self.landmarks_**2).sum(axis=1)
        for start in range(0, len(z), 4096):  # chunks: the kernel block is the memory peak
            chunk = z[start : start + 4096]
            d2 = np.maximum((chunk**2).sum(axis=1)[:, None] + sq_l[None, :] - 2.0 * chunk @ self.landmarks_.T, 0.0)
            out[start : start + 4096] = np.exp(-self.gamma_ * d2) @ self.normalization_.T
        return out

    def _scores(self, z: np.ndarray) -> np.ndarray:
        return self.svm_._scores(self._map(z))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "gamma": np.array([self.gamma_]), "landmarks": self.landmarks_, "normalization": self.normalization_,
            **{f"svm.{k}": v for k, v in self.svm_.arrays().items()},
        }

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], n_classes: int, n_features: int) -> RbfSvm:
        self = cls(params)
        gamma = take(arrays, "gamma", 1, shape=(1,))
        if gamma[0] <= 0:
            raise ModelError("array 'gamma' must be positive")
        self.gamma_ = float(gamma[0])
        self.landmarks_ = take(arrays, "landmarks", 2, shape=(None, n_features))
        k = len(self.landmarks_)
        self.normalization_ = take(arrays, "normalization", 2, shape=(k, k))
        svm = {k_[4:]: v for k_, v in arrays.items() if k_.startswith("svm.")}
        self.svm_ = LinearSvm.from_arrays({"C": self.params["C"], "max_iter": self.params["max_iter"]}, svm, n_classes, k)
        self._set_classes(self.svm_.classes_, n_classes)
        return self


class RandomForest(_Classifier):
    """A random forest; prediction walks the saved node tables of every tree at once."""

    name = "random_forest"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 100,
        "min_samples_leaf": 5,  # smaller leaves barely help on FER and make the file several times larger
        "max_features": "sqrt",
        "max_depth": None,
        "n_jobs": 1,  # one process: the machines this runs on are often shared; raise it on your own
    }

    def fit(self, z: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> RandomForest:
        from sklearn.ensemble import RandomForestClassifier

        _present(y, n_classes)
        p = self.params
        forest = RandomForestClassifier(
            n_estimators=p["n_estimators"], min_samples_leaf=p["min_samples_leaf"], max_features=p["max_features"],
            max_depth=p["max_depth"], n_jobs=p["n_jobs"], random_state=seed,
        ).fit(z, y)
        return self.from_sklearn(forest, n_classes)

    def from_sklearn(self, forest: Any, n_classes: int) -> RandomForest:
        self._set_classes(np.asarray(forest.classes_), n_classes)
        left, right, feature, threshold, value, offsets = [], [], [], [], [], [0]
        for est in forest.estimators_:
            t = est.tree_
            off = offsets[-1]
            leaf = t.children_left < 0
            left.append(np.where(leaf, -1, t.children_left + off))
            right.append(np.where(leaf, -1, t.children_right + off))
            feature.append(np.where(leaf, 0, t.feature))
            threshold.append(np.where(leaf, 0.0, t.threshold))
            v = t.value[:, 0, :].astype(np.float64)
            s = v.sum(axis=1, keepdims=True)
            value.append(v / np.where(s == 0, 1.0, s))  # as DecisionTreeClassifier.predict_proba
            offsets.append(off + t.node_count)
        self.children_left_ = np.concatenate(left).astype(np.int64)
        self.children_right_ = np.concatenate(right).astype(np.int64)
        self.feature_ = np.concatenate(feature).astype(np.int64)
        self.threshold_ = np.concatenate(threshold).astype(np.float64)
        self.value_ = np.concatenate(value).astype(np.float32)
        self.tree_offsets_ = np.asarray(offsets, np.int64)
        return self

    def proba(self, z: np.ndarray) -> np.ndarray:
        """Mean over trees of the leaf class shares, (N, n_present): RandomForestClassifier.predict_proba."""
        self._check_fitted()
        # Trees split on float32 inputs (sklearn casts), against float64 thresholds.
        z = np.asarray(z, np.float32)
        rows = np.arange(len(z))[:, None]
        node = np.broadcast_to(self.tree_offsets_[:-1], (len(z), len(self.tree_offsets_) - 1)).copy()  # (N, T)
        while True:
            inner = self.children_left_[node] >= 0
            if not inner.any():
                break
            go_left = z[rows, self.feature_[node]] <= self.threshold_[node]
            nxt = np.where(go_left, self.children_left_[node], self.children_right_[node])
            node = np.where(inner, nxt, node)
        return self.value_[node].astype(np.float64).mean(axis=1)

    def _scores(self, z: np.ndarray) -> np.ndarray:
        return np.log(np.clip(self.proba(z), 1e-6, None))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "classes": self.classes_, "children_left": self.children_left_, "children_right": self.children_right_,
            "feature": self.feature_, "threshold": self.threshold_, "value": self.value_, "tree_offsets": self.tree_offsets_,
        }

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], n_classes: int, n_features: int) -> RandomForest:
        self = cls(params)
        self._classes_from(arrays, n_classes)
        offsets = take(arrays, "tree_offsets", 1, kind="i")
        n = int(offsets[-1]) if len(offsets) else 0
        left = take(arrays, "children_left", 1, kind="i", shape=(n,))
        right = take(arrays, "children_right", 1, kind="i", shape=(n,))
        feature = take(arrays, "feature", 1, kind="i", shape=(n,))
        threshold = take(arrays, "threshold", 1, shape=(n,))
        value = take(arrays, "value", 2, shape=(n, len(self.classes_)))
        idx = np.arange(n)
        # Node tables are built depth-first: a child always comes after its parent, inside its
        # own tree. Checking that rules out cycles and jumps, so prediction always ends.
        tree_of = np.searchsorted(offsets, idx, side="right") - 1
        end = offsets[np.clip(tree_of + 1, 0, len(offsets) - 1)]
        for name, child in (("children_left", left), ("children_right", right)):
            inner = child >= 0
            if (inner != (left >= 0)).any() or (child[inner] <= idx[inner]).any() or (child[inner] >= end[inner]).any():
                raise ModelError(f"array {name!r} does not describe valid trees (children must follow their parent inside one tree)")
        if len(offsets) < 2 or offsets[0] != 0 or (np.diff(offsets) < 1).any():
            raise ModelError("array 'tree_offsets' must start at 0 and increase")
        if (feature < 0).any() or (feature >= n_features).any():
            raise ModelError(f"array 'feature' refers to features outside [0, {n_features})")
        self.children_left_, self.children_right_, self.feature_ = left.astype(np.int64), right.astype(np.int64), feature.astype(np.int64)
        self.threshold_, self.value_, self.tree_offsets_ = threshold.astype(np.float64), value.astype(np.float32), offsets.astype(np.int64)
        return self


_ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "identity": lambda a: a,
}


class Mlp(_Classifier):
    """A multi-layer perceptron (MLPClassifier), trained with Adam and early stopping."""

    name = "mlp"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "hidden": (256,),  # one hidden layer: more depth on hand-made features overfits FER quickly
        "activation": "relu",
        "alpha": 1e-3,  # L2 penalty
        "learning_rate_init": 1e-3,
        "batch_size": 256,
        "max_iter": 100,  # epochs; early stopping on a 10% hold-out of train usually ends it sooner
    }

    def fit(self, z: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> Mlp:
        from sklearn.neural_network import MLPClassifier

        _present(y, n_classes)
        p = self.params
        if p["activation"] not in _ACTIVATIONS:
            raise ConfigError(f"mlp.activation = {p['activation']!r}; expected one of {', '.join(_ACTIVATIONS)}")
        mlp = MLPClassifier(
            hidden_layer_sizes=p["hidden"], activation=p["activation"], alpha=p["alpha"], learning_rate_init=p["learning_rate_init"],
            batch_size=min(p["batch_size"], int(len(z) * 0.9)), max_iter=p["max_iter"], early_stopping=len(z) >= 50, random_state=seed,
        )  # early stopping holds out 10% of the faces, hence the 0.9
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget, stopping there is expected
            mlp.fit(z, y)
        return self.from_sklearn(mlp, n_classes)

    def from_sklearn(self, mlp: Any, n_classes: int) -> Mlp:
        self._set_classes(np.asarray(mlp.classes_), n_classes)
        self.activation_ = str(mlp.activation)
        self.coefs_ = [np.asarray(w, np.float64) for w in mlp.coefs_]
        self.intercepts_ = [np.asarray(b, np.float64) for b in mlp.intercepts_]
        return self

    def _scores(self, z: np.ndarray) -> np.ndarray:
        a = z.astype(np.float64)
        act = _ACTIVATIONS[self.activation_]
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            a = a @ w + b
            if i < len(self.coefs_) - 1:
                a = act(a)
        if a.shape[1] == 1:  # binary: one logistic unit, P(second class) = sigmoid(a)
            a = np.hstack([np.zeros_like(a), a])
        return a

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"classes": self.classes_}
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            out[f"coef.{i}"], out[f"intercept.{i}"] = w, b
        return out

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], n_classes: int, n_features: int) -> Mlp:
        self = cls(params)
        self._classes_from(arrays, n_classes)
        if self.params["activation"] not in _ACTIVATIONS:
            raise ModelError(f"mlp activation {self.params['activation']!r} is unknown; expected one of {', '.join(_ACTIVATIONS)}")
        self.activation_ = self.params["activation"]
        n_layers = len(self.params["hidden"]) + 1
        width = n_features
        self.coefs_, self.intercepts_ = [], []
        for i in range(n_layers):
            last = i == n_layers - 1
            out = (1 if len(self.classes_) == 2 else len(self.classes_)) if last else self.params["hidden"][i]
            self.coefs_.append(take(arrays, f"coef.{i}", 2, shape=(width, out)))
            self.intercepts_.append(take(arrays, f"intercept.{i}", 1, shape=(out,)))
            width = out
        return self


CLASSIFIERS: dict[str, type[_Classifier]] = {c.name: c for c in (LinearSvm, RbfSvm, RandomForest, Mlp)}
