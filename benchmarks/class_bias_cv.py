"""Does fitting per-class logit offsets on validation help on faces it was not fitted on?

    python benchmarks/class_bias_cv.py --model runs/default-v4 --data ../shared/datasets/fer2013/archive.zip

`emolens evaluate --class-bias` fits the offsets on the whole of PublicTest and reports them on
the same faces, which flatters them. This splits PublicTest in two halves at random, fits on one
half and scores on the other (both ways, `--repeats` times), and prints the mean held-out change
in accuracy and macro-F1. PrivateTest is never touched. Decided the recipe: model 0.2.0 used the
offsets; 0.3.0 does not (-0.16 accuracy, -0.09 macro-F1 held out).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from emolens.data import load_dataset
    from emolens.evaluation.calibration import fit_class_bias
    from emolens.evaluation.metrics import macro_f1_score
    from emolens.inference import predict_logits
    from emolens.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file or run folder (default: the shipped model)")
    ap.add_argument("--data", required=True, help="FER-2013 in any form emolens reads")
    ap.add_argument("--min-recall", type=float, default=0.47, help="as `emolens evaluate --min-recall`")
    ap.add_argument("--repeats", type=int, default=5, help="random halvings of PublicTest")
    args = ap.parse_args()

    model = load_model(args.model)
    val = load_dataset(args.data, image_size=model.emolens_config.preprocess.image_size, progress=False).subset("val")
    logits, labels = np.asarray(predict_logits(model, val.images)), val.labels
    n_classes = logits.shape[1]
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(args.repeats):
        perm = rng.permutation(len(labels))
        halves = perm[: len(perm) // 2], perm[len(perm) // 2 :]
        for fit, held in (halves, halves[::-1]):
            offsets = fit_class_bias(logits[fit], labels[fit], min_recall=args.min_recall)
            base, adjusted = logits[held].argmax(1), (logits[held] + offsets).argmax(1)
            gains.append((
                (adjusted == labels[held]).mean() - (base == labels[held]).mean(),
                macro_f1_score(labels[held], adjusted, n_classes) - macro_f1_score(labels[held], base, n_classes),
            ))
    g = 100 * np.asarray(gains)
    print(f"held-out change from class offsets over {len(g)} folds: accuracy {g[:, 0].mean():+.2f} points (sd {g[:, 0].std():.2f}), "
          f"macro-F1 {g[:, 1].mean():+.2f} points (sd {g[:, 1].std():.2f})")


if __name__ == "__main__":
    main()
