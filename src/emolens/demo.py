"""`make demo` / `python -m emolens.demo`: find and label the faces in real photos, offline.

Uses the shipped model and two real photos that come with the install, offline: scikit-image's
astronaut (Eileen Collins, smiling), alone and as a group of four, and matplotlib's portrait of
Grace Hopper (a straight face); writes the annotated images into ./emolens-demo/ and prints
where they went and a table of the faces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(model: str | None = None, output: str | Path = "emolens-demo") -> list[Path]:
    """Label the demo photos with `model` (None: the shipped one); returns the written images."""
    from emolens.paths import free_stem
    from emolens.pipeline import EmotionRecognizer
    from emolens.pipeline.samples import astronaut, grace_hopper, group_photo

    rec = EmotionRecognizer(model)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    photos = [("astronaut", astronaut(), "rgb"), ("grace_hopper", grace_hopper(), "rgb"), ("group", group_photo()[0], "bgr")]
    written = []
    info = rec.model_info()
    print(f"model: {info['name']} {info['version']} ({info['arch']}, {info['backend']}); detector: {info['detector']}\n")
    print(f"{'image':<14}{'face':>5}  {'box (x, y, w, h)':<22}{'emotion':<10}{'score':>6}   runner-up")
    for name, image, order in photos:
        result = rec.predict(image, color_order=order, name=name)
        path = out / f"{free_stem(out, name, ['.jpg'])}.jpg"
        result.save(path)
        written.append(path)
        for i, face in enumerate(result):
            second = sorted(face.scores.items(), key=lambda kv: -kv[1])[1]
            print(f"{name:<14}{i:>5}  {face.box!s:<22}{face.label:<10}{face.score:>6.0%}   {second[0]} {second[1]:.0%}")
        if not result.faces:
            print(f"{name:<14}  no face found")
    print("\nannotated images:")
    for path in written:
        print(f"  {path.resolve()}")
    return written


def main(argv: list[str] | None = None) -> int:
    from emolens.errors import EmolensError
    from emolens.models import default_model_path

    parser = argparse.ArgumentParser(prog="python -m emolens.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file instead of the shipped one")
    parser.add_argument("--output", default="emolens-demo", help="folder for the annotated images (default: ./emolens-demo)")
    args = parser.parse_args(argv)
    if args.model is None and not default_model_path().exists():
        print(
            f"The default model is not installed: {default_model_path()} does not exist.\n"
            "Train one (`emolens train`) and run `python -m emolens.demo --model runs/NAME/best.safetensors`.",
            file=sys.stderr,
        )
        return 1
    try:
        run(args.model, args.output)
    except EmolensError as exc:
        print(f"emolens demo: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
