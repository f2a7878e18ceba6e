"""Install a trained run as the model emolens ships and loads by default.

    python tools/ship_model.py runs/default-v1 --version 0.1.0

Copies the run's best.safetensors into src/emolens/weights/default.safetensors (+ .json) with a
name and version; the weights, the training config, the data sha256 and the validation metrics
are the run's own, untouched. Refuses to replace an existing default unless --replace is given.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from emolens.models import default_model_path, load_model, save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder or model file")
    ap.add_argument("--name", default="emolens-default")
    ap.add_argument("--version", required=True)
    ap.add_argument("--replace", action="store_true", help="replace the default model that is there")
    args = ap.parse_args()
    target = default_model_path()
    if target.exists() and not args.replace:
        raise SystemExit(f"{target} exists; pass --replace to replace it")
    model = load_model(args.run)
    config = replace(model.emolens_config, name=args.name, version=args.version)
    print(f"wrote {save_model(model, Path(target), config)}")


if __name__ == "__main__":
    main()
