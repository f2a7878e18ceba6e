"""How often FER-2013's single label and the FER+ ten-annotator majority agree, on the same faces.

    python benchmarks/label_agreement.py --fer2013 ../shared/datasets/fer2013/archive.zip \
        --ferplus ../shared/datasets/ferplus/fer2013new.csv [--model default]

Reads the Kaggle download twice: with its own folder labels, and relabelled by FER+ through the
map emolens ships. Prints the share of faces both label on which the two agree, and for each
FER-2013 class what FER+ calls its faces (rows sum to 100%).

With --model, also what that means for calibrated scores: on the validation faces (PublicTest)
that carry both labels, the temperature each label set asks for, and the ECE under each label
set across a grid of temperatures. Validation only, so it may pick a temperature; no test split
is read.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


def _both_labels(fer2013: str, ferplus: str):
    """The FER+-labelled Kaggle faces, and each one's own FER-2013 label (aligned)."""
    from emolens.data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FER+ drops ties, contempt, unknown and not-a-face
        own = load_dataset(fer2013, progress=False)
        plus = load_dataset(fer2013, ferplus=ferplus, progress=False)
    own_label = dict(zip(map(str, own.names), own.labels, strict=True))
    return plus, np.array([own_label[str(n)] for n in plus.names])


def print_agreement(plus_labels: np.ndarray, fer2013_labels: np.ndarray) -> None:
    import pandas as pd

    from emolens.labels import EMOTIONS

    agree = float((fer2013_labels == plus_labels).mean())
    print(f"{len(plus_labels)} faces carry both labels; they agree on {100 * agree:.1f}% and disagree on {100 * (1 - agree):.1f}%\n")
    table = pd.crosstab(pd.Categorical([EMOTIONS[i] for i in fer2013_labels], EMOTIONS), pd.Categorical([EMOTIONS[i] for i in plus_labels], EMOTIONS),
                        normalize="index", dropna=False)
    table.index.name, table.columns.name = "FER-2013 label", "FER+ majority"
    print((100 * table).round(1).to_string())


def print_calibration(model_spec: str, plus, fer2013_labels: np.ndarray) -> None:
    """ECE under each label set on the validation faces, across temperatures."""
    from emolens.data.dataset import SPLITS
    from emolens.evaluation.calibration import expected_calibration_error, fit_temperature, softmax_with_temperature
    from emolens.inference import predict_logits
    from emolens.models import load_model, resolve_model_path

    val = plus.split == SPLITS.index("val")  # PublicTest
    model = load_model(resolve_model_path(model_spec))
    logits = np.asarray(predict_logits(model, plus.images[val]), dtype=np.float64)
    sets = {"FER+ majority": plus.labels[val], "FER-2013 label": fer2013_labels[val]}
    fitted = {name: fit_temperature(logits, y) for name, y in sets.items()}
    fitted["both (pooled)"] = fit_temperature(np.concatenate([logits, logits]), np.concatenate(list(sets.values())))
    print(f"\nCalibration of {resolve_model_path(model_spec)} on the {int(val.sum())} validation (PublicTest) faces with both labels")
    print("NLL-fitted temperature: " + ", ".join(f"{k} {v:.3f}" for k, v in fitted.items()) + f"; the model's own {model.emolens_config.temperature:.3f}\n")
    print("| temperature | " + " | ".join(f"ECE, {k}" for k in sets) + " | worse of the two |")
    print("|---|---|---|---|")
    def eces(t: float) -> list[float]:
        return [expected_calibration_error(softmax_with_temperature(logits, t), y) for y in sets.values()]

    for t in sorted({*TEMPERATURES, round(model.emolens_config.temperature, 3)}):
        print(f"| {t:.3f} | " + " | ".join(f"{e:.3f}" for e in eces(t)) + f" | {max(eces(t)):.3f} |")
    # The temperature that serves both label sets best: the smallest worse-of-the-two ECE.
    worst, t_best = min((max(eces(t)), t) for t in np.arange(0.4, 2.0, 0.005))
    print(f"\nBest for both at once: temperature {t_best:.3f}, ECE " + " / ".join(f"{e:.3f}" for e in eces(t_best)) + f" (worse of the two {worst:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fer2013", required=True, help="the Kaggle FER-2013 zip or its folders")
    ap.add_argument("--ferplus", required=True, help="Microsoft's fer2013new.csv")
    ap.add_argument("--model", default=None, help="also scan the calibration of this model (file, run folder, default, fer2013)")
    args = ap.parse_args()
    plus, fer2013_labels = _both_labels(args.fer2013, args.ferplus)
    print_agreement(plus.labels, fer2013_labels)
    if args.model:
        print_calibration(args.model, plus, fer2013_labels)


if __name__ == "__main__":
    main()
