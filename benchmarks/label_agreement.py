"""How often FER-2013's single label and the FER+ ten-annotator majority agree, on the same faces.

    python benchmarks/label_agreement.py --fer2013 ../shared/datasets/fer2013/archive.zip \
        --ferplus ../shared/datasets/ferplus/fer2013new.csv

Reads the Kaggle download twice: with its own folder labels, and relabelled by FER+ through the
map emolens ships. Prints the share of faces both label on which the two agree, and for each
FER-2013 class what FER+ calls its faces (rows sum to 100%).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def main() -> None:
    import pandas as pd

    from emolens.data import load_dataset
    from emolens.labels import EMOTIONS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fer2013", required=True, help="the Kaggle FER-2013 zip or its folders")
    ap.add_argument("--ferplus", required=True, help="Microsoft's fer2013new.csv")
    args = ap.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FER+ drops ties, contempt, unknown and not-a-face
        own = load_dataset(args.fer2013, progress=False)
        plus = load_dataset(args.fer2013, ferplus=args.ferplus, progress=False)
    own_label = dict(zip(map(str, own.names), own.labels, strict=True))
    fer2013 = np.array([own_label[str(n)] for n in plus.names])
    agree = float((fer2013 == plus.labels).mean())
    print(f"{len(plus)} faces carry both labels; they agree on {100 * agree:.1f}% and disagree on {100 * (1 - agree):.1f}%\n")
    table = pd.crosstab(pd.Categorical([EMOTIONS[i] for i in fer2013], EMOTIONS), pd.Categorical([EMOTIONS[i] for i in plus.labels], EMOTIONS),
                        normalize="index", dropna=False)
    table.index.name, table.columns.name = "FER-2013 label", "FER+ majority"
    print((100 * table).round(1).to_string())


if __name__ == "__main__":
    main()
