"""Install a trained run as the model emolens ships and loads by default.

    python tools/ship_model.py runs/default-v4 --version 0.3.0 --data PATH/TO/fer2013/archive.zip \
        --ferplus-data PATH/TO/ferplus-images.zip --framing framing.json

Copies the run's best.safetensors into src/emolens/weights/default.safetensors (+ .json) with a
name and version; the weights, the training config, the data sha256 and the validation metrics
are the run's own, untouched. With --data, the model is first measured on that dataset's test
split (FER-2013 PrivateTest) and the figures are recorded beside the validation ones
(`metrics["test"]`), so the file itself says how good it is; --ferplus-data does the same on
FER+ test (majority labels, `metrics["test_ferplus"]`). --framing records the crop geometry
measured per detector by `benchmarks/framing.py --save` in the model's preprocessing config.
Refuses to replace an existing default unless --replace is given.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from emolens.models import load_model, save_model
from emolens.models.io import SHIPPED_MODELS, shipped_model_path


def _test_metrics(model, data: str) -> dict:
    from emolens.data import load_dataset
    from emolens.evaluation import evaluate

    ds = load_dataset(data, image_size=model.emolens_config.preprocess.image_size, progress=False)
    report = evaluate(model, ds, split="test")
    figures = {k: v for k, v in report.summary().items() if k not in ("model", "images_per_s")}
    figures["recall"] = {row["class"]: row["recall"] for row in report.per_class}
    figures["data_sha256"] = ds.source_sha256
    print(f"test split of {data}: accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}")
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder or model file")
    ap.add_argument("--name", default="emolens-default")
    ap.add_argument("--version", required=True)
    ap.add_argument("--as", dest="slot", default="default", choices=sorted(SHIPPED_MODELS), help="which shipped model to write")
    ap.add_argument("--replace", action="store_true", help="replace the shipped model that is there")
    ap.add_argument("--data", default=None, help="measure on this dataset's test split and record the figures in the file")
    ap.add_argument("--ferplus-data", default=None, help="FER+ images: measure on FER2013Test (majority labels) and record it too")
    ap.add_argument("--framing", type=Path, default=None, help="JSON {detector: [scale, dx, dy]} from benchmarks/framing.py --save")
    args = ap.parse_args()
    target = shipped_model_path(args.slot)
    if target.exists() and not args.replace:
        raise SystemExit(f"{target} exists; pass --replace to replace it")
    model = load_model(args.run)
    config = replace(model.emolens_config, name=args.name, version=args.version)
    if args.framing:
        from emolens.preprocessing import PreprocessConfig

        framing = json.loads(args.framing.read_text())
        config = replace(config, preprocess=PreprocessConfig.validated({**config.preprocess.to_dict(), "framing": framing}, str(args.framing)))
    if args.data:
        config = replace(config, metrics={**config.metrics, "test": _test_metrics(model, args.data)})
    if args.ferplus_data:
        config = replace(config, metrics={**config.metrics, "test_ferplus": _test_metrics(model, args.ferplus_data)})
    print(f"wrote {save_model(model, Path(target), config)}")


if __name__ == "__main__":
    main()
