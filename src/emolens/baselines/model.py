"""`BaselineModel`: features + standardiser + classifier + temperature, saved without pickle.

A baseline model file `NAME.safetensors` holds every fitted array (`feature.*`, `scaler.*`,
`classifier.*`) and, in its header metadata, a JSON document naming the components, their
parameters, the label order, the preprocessing and the temperature; `NAME.json` beside it is
a readable copy. `load_baseline` accepts nothing else: the file must be safetensors, carry
that document, name known components and hold exactly the arrays they need, with the right
shapes. scikit-learn's own persistence (pickle/joblib) runs code on load, so it is refused.

Example::

    model = load_baseline("runs/baselines/hog_linear_svm/model.safetensors")
    probs = model.predict_proba(faces)  # faces: uint8 (N, 48, 48) -> (N, 7)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emolens.baselines.classifiers import CLASSIFIERS
from emolens.baselines.features import FEATURES, Standardizer, normalized_pixels
from emolens.errors import ConfigError, ModelError
from emolens.labels import EMOTIONS
from emolens.preprocessing import PreprocessConfig

FORMAT_VERSION = 1
_META_KEY = "emolens_baseline"
_REFUSED_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".npy", ".npz", ".pt", ".pth", ".bin")


@dataclass
class BaselineModel:
    """A fitted classic baseline. `predict_proba` takes uint8 faces like every emolens model."""

    feature: Any  # HogFeatures | PcaFeatures
    scaler: Standardizer
    classifier: Any  # one of emolens.baselines.classifiers.CLASSIFIERS
    labels: tuple[str, ...] = EMOTIONS
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    temperature: float = 1.0  # fitted on validation: softmax(logits / T)
    name: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return f"{self.feature.name}+{self.classifier.name}"

    def features(self, faces: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """uint8 faces (N, S, S) -> standardised features (N, D) float32."""
        return self.scaler.transform(self.feature.transform(normalized_pixels(faces, self.preprocess), progress=progress))

    def predict_logits(self, faces: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Logits (N, C) over `labels`."""
        return self.classifier.logits(self.features(faces, progress=progress))

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C): softmax(logits / temperature)."""
        from emolens.inference import softmax_with_temperature

        return softmax_with_temperature(self.predict_logits(faces), self.temperature)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Class indices (N,) into `labels`."""
        return self.predict_logits(faces).argmax(axis=1)

    # -- files ---------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": "emolens-baseline",
            "feature": {"name": self.feature.name, "params": _plain(self.feature.params)},
            "classifier": {"name": self.classifier.name, "params": _plain(self.classifier.params)},
            "n_features": int(len(self.scaler.mean_)),
            "labels": list(self.labels),
            "preprocess": self.preprocess.to_dict(),
            "temperature": float(self.temperature),
            "name": self.name,
            "training": self.training,
            "metrics": self.metrics,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"feature.{k}": v for k, v in self.feature.arrays().items()}
        out |= {f"scaler.{k}": v for k, v in self.scaler.arrays().items()}
        out |= {f"classifier.{k}": v for k, v in self.classifier.arrays().items()}
        return {k: np.ascontiguousarray(v) for k, v in out.items()}

    def save(self, path: str | Path) -> Path:
        """Write `path` (.safetensors) and its `.json` twin; an existing file is never overwritten."""
        from safetensors.numpy import save

        from emolens.models.io import atomic_write_bytes

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        for p in (path, path.with_suffix(".json")):
            if p.exists():
                raise ModelError(f"{p}: already exists; baseline models are never overwritten, choose another path")
        text = json.dumps(self.config(), sort_keys=True)
        atomic_write_bytes(path, save(self.arrays(), metadata={_META_KEY: text}))
        atomic_write_bytes(path.with_suffix(".json"), (json.dumps(self.config(), indent=2, sort_keys=True) + "\n").encode())
        return path


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _params(section: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, dict) or not isinstance(section.get("name"), str) or not isinstance(section.get("params", {}), dict):
        raise ModelError(f"baseline model file: '{where}' must be {{name, params}}, got {section!r}")
    return section["name"], dict(section.get("params", {}))


def load_baseline(path: str | Path) -> BaselineModel:
    """Load a baseline model file written by `BaselineModel.save`; refuse anything else."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() in _REFUSED_SUFFIXES:
        raise ModelError(
            f"{path}: emolens loads baseline models only from its own .safetensors files; {path.suffix} files are refused "
            "because loading them can run code (pickle) or carries no description of the model"
        )
    if path.suffix != ".safetensors":
        raise ModelError(f"{path}: expected a .safetensors baseline model file written by `emolens baseline`")
    if not path.is_file():
        raise ModelError(f"{path}: no such baseline model file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    if _META_KEY not in meta:
        hint = " (it is a network model file: load it with emolens.models.load_model)" if "emolens_config" in meta else ""
        raise ModelError(f"{path}: safetensors file carries no emolens baseline description{hint}")
    try:
        cfg = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: baseline description is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{path}: baseline description must be a JSON object")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: baseline format {cfg['format_version']} is newer than this emolens reads ({FORMAT_VERSION}); upgrade emolens")
    try:
        return _build(cfg, arrays)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid baseline description ({exc.__class__.__name__}: {exc})") from None


def _build(cfg: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaselineModel:
    fname, fparams = _params(cfg.get("feature"), "feature")
    cname, cparams = _params(cfg.get("classifier"), "classifier")
    if fname not in FEATURES:
        raise ModelError(f"unknown feature extractor {fname!r}; expected one of {', '.join(FEATURES)}")
    if cname not in CLASSIFIERS:
        raise ModelError(f"unknown classifier {cname!r}; expected one of {', '.join(CLASSIFIERS)}")
    labels = tuple(cfg["labels"])
    if not labels or not all(isinstance(c, str) for c in labels) or len(set(labels)) != len(labels):
        raise ModelError(f"labels must be distinct names, got {list(labels)}")
    n_features = int(cfg["n_features"])

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    feature = FEATURES[fname].from_arrays(fparams, part("feature."))
    scaler = Standardizer.from_arrays(part("scaler."))
    if len(scaler.mean_) != n_features:
        raise ModelError(f"scaler has {len(scaler.mean_)} features, the description says {n_features}")
    classifier = CLASSIFIERS[cname].from_arrays(cparams, part("classifier."), len(labels), n_features)
    temperature = float(cfg.get("temperature", 1.0))
    if not np.isfinite(temperature) or temperature <= 0:
        raise ModelError(f"temperature must be positive, got {temperature}")
    model = BaselineModel(
        feature=feature, scaler=scaler, classifier=classifier, labels=labels,
        preprocess=PreprocessConfig.from_dict(cfg.get("preprocess", {})), temperature=temperature,
        name=str(cfg.get("name", "")), training=dict(cfg.get("training", {})), metrics=dict(cfg.get("metrics", {})),
    )
    extra = set(arrays) - set(model.arrays())
    if extra:
        raise ModelError(f"file holds arrays no component uses: {sorted(extra)[:5]}")
    return model
