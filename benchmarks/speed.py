"""Speed of emolens on this machine: video end to end, crop classification, memory, vs `fer`.

    python benchmarks/speed.py                      # the shipped model
    python benchmarks/speed.py --arch vgg_fer_small # a randomly initialised model (speed only)
    python benchmarks/speed.py --fer2013 ../shared/datasets/fer2013/archive.zip  # + int8 accuracy

1. End to end: `emolens video` (decode, detect, track, classify, draw, write the CSV and the
   annotated video) on 640x480 test videos of real faces with one and with four faces, run
   as the CLI runs it, in a child process whose peak memory is reported.
2. Crop classification throughput at batch 1 and 64: PyTorch, ONNX fp32, ONNX int8.
3. With --fer2013: PrivateTest accuracy of ONNX fp32 and int8 (int8 calibrated on 512
   training faces); the two must be within 0.5 points.
4. When the `fer` package is installed: the same one-face video through fer's own video
   pipeline in this run, and emolens's speed as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _model_file(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    from emolens.models import ModelConfig, build_model, default_model_path, save_model

    if args.model:
        return Path(args.model), Path(args.model).name
    if args.arch is None and default_model_path().exists():
        return default_model_path(), "shipped default"
    arch = args.arch or "vgg_fer_small"
    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch=arch)), tmp / f"random-{arch}.safetensors"), f"randomly initialised {arch} (no trained weights)"


# Peak RSS from VmHWM: ru_maxrss survives exec on Linux, so a child forked from this (large)
# process would report at least this process's size.
_CLI_WITH_PEAK = (
    "import re, sys\n"
    "from emolens.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    "sys.exit(rc)\n"
)


def end_to_end(model: Path, video: Path, out: Path, extra: list[str]) -> tuple[float, float, float]:
    """frames/s reported by `emolens video`, that process's peak RSS in MB, and its whole wall
    time in s (start-up, imports and model loading included: what a user waits for)."""
    cmd = [sys.executable, "-c", _CLI_WITH_PEAK, "video", str(video), "--model", str(model), "-o", str(out),
           "--no-plot", "--no-progress", "--overwrite", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"emolens video failed:\n{proc.stderr}")
    fps = float(re.search(r"at ([\d.]+) frames/s", proc.stdout).group(1))
    peak_kb = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stdout).group(1))  # KiB on Linux
    return fps, peak_kb / 1024, wall


def throughput(backend, faces: np.ndarray, batch: int, seconds: float = 2.0) -> float:
    """Faces per second for repeated calls of `batch` faces."""
    x = faces[:batch]
    backend.predict_proba(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.predict_proba(x)
        n += len(x)
    return n / (time.perf_counter() - t0)


_FER_SCRIPT = """
import sys, tempfile, time
try:
    from fer import FER, Video
except ImportError:  # fer 25.x no longer re-exports them
    from fer.classes import Video
    from fer.fer import FER
detector = FER(mtcnn=False)  # its defaults: Haar (scale 1.1, 5 neighbours, 50 px faces) + quantised mini-Xception
video = Video(sys.argv[1], outdir=tempfile.mkdtemp())
t0 = time.perf_counter()
rows = video.analyze(detector, display=False, save_frames=False, save_video=False, annotate_frames=False, zip_images=False)
print("FER_RESULT", len(rows), time.perf_counter() - t0)
"""


def fer_fps(video: Path, frames: int, python: str | None) -> tuple[float, int, float] | None:
    """fer's own video pipeline on the same file: (frames/s of its analysis loop, frames it
    analysed, the whole process's wall time in s), or None when fer is not installed.

    fer needs TensorFlow and opencv-contrib, which do not mix with emolens's environment, so
    it may live in its own: --fer-python PATH/bin/python.
    """
    if python is None:
        import importlib.util

        if importlib.util.find_spec("fer") is None:
            return None
        python = sys.executable
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", _FER_SCRIPT, str(video)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    found = re.search(r"FER_RESULT (\d+) ([\d.]+)", proc.stdout)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"fer failed:\n{proc.stderr[-3000:]}")
    n, seconds = int(found.group(1)), float(found.group(2))
    return n / seconds, n, wall


def int8_accuracy(model: Path, fer2013: Path) -> dict[str, float]:
    from emolens.data import load_dataset
    from emolens.models import load_model, read_model_config
    from emolens.runtime import OnnxBackend, TorchBackend
    from emolens.runtime.onnx import export_onnx_bytes, quantize_int8

    cfg = read_model_config(model)
    data = load_dataset(fer2013, image_size=cfg.preprocess.image_size, progress=False)
    train, test = data.subset("train"), data.subset("test")
    calib = train.images[:: max(1, len(train) // 512)][:512]
    net = load_model(model)
    fp32 = export_onnx_bytes(net)
    int8, method = quantize_int8(fp32, calib)
    out = {"test_images": len(test), "int8_method": method}
    for name, backend in (("torch", TorchBackend(net)), ("onnx_fp32", OnnxBackend(fp32)), ("onnx_int8", OnnxBackend(int8))):
        pred = backend.predict_proba(test.images).argmax(1)
        out[f"{name}_accuracy"] = round(100.0 * float((pred == test.labels).mean()), 2)
    out["int8_minus_fp32_points"] = round(out["onnx_int8_accuracy"] - out["onnx_fp32_accuracy"], 2)
    return out


def end_to_end_section(model: Path, int8_file: Path, videos: dict, tmp: Path, detector_args: list[str], repeat: int) -> dict[str, dict]:
    """`emolens video` on the 1- and 4-face videos with the model and its int8 copy: frames/s, whole-process seconds, peak memory."""
    print("\nend to end, 640x480, `emolens video` (decode, detect, track, classify, draw, write CSV + annotated video):")
    e2e = {}
    for label, model_arg in (("default backend (auto: onnx fp32)", model), ("int8 ONNX model", int8_file)):
        print(f"  {label}:")
        for n, v in videos.items():
            runs = [end_to_end(model_arg, v.path, tmp / "out", detector_args) for _ in range(repeat)]
            fps = sorted(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            wall = sorted(r[2] for r in runs)
            e2e[f"{n}_face{'_int8' if model_arg == int8_file else ''}"] = {
                "fps_best": fps[-1], "fps_median": fps[len(fps) // 2], "peak_rss_mb": round(peak, 1),
                "process_s_best": round(wall[0], 2), "process_s_median": round(wall[len(wall) // 2], 2),
            }
            print(f"    {n} face{'s' if n > 1 else ' '}: {fps[-1]:7.1f} frames/s best of {repeat} (median {fps[len(fps) // 2]:.1f})   "
                  f"whole process {wall[0]:.2f} s (median {wall[len(wall) // 2]:.2f})   peak memory {peak:.0f} MB")
    return e2e


def crop_throughput_section(net: torch.nn.Module, fp32: bytes, int8: bytes, faces: np.ndarray) -> dict[str, dict]:
    """Crops classified per second by each backend, one at a time and in batches of 64."""
    from emolens.runtime import OnnxBackend, TorchBackend

    backends = {"torch": TorchBackend(net), "torch 1 thread": None, "onnx fp32": OnnxBackend(fp32), "onnx int8": OnnxBackend(int8)}
    print("\ncrop classification, faces/s:")
    tp = {}
    for name, backend in backends.items():
        if backend is None:  # after the default-thread run: set_num_threads is process-wide
            torch.set_num_threads(1)
            backend = TorchBackend(net)
        b1, b64 = throughput(backend, faces, 1), throughput(backend, faces, 64)
        tp[name] = {"batch1": round(b1, 1), "batch64": round(b64, 1)}
        print(f"  {name:<15} batch 1: {b1:8.1f}   batch 64: {b64:8.1f}")
    return tp


def fer_section(video: Path, frames: int, fer_python: str | None, repeat: int, ours: dict) -> dict | None:
    """`fer`'s video pipeline on the same 1-face video, and emolens's speed over it (`ours`: emolens's
    1-face end-to-end figures); None when `fer` is not installed."""
    fer_runs = [fer_fps(video, frames, fer_python) for _ in range(repeat)]
    if fer_runs[0] is None:
        print("\nfer: not installed, comparison skipped (pip install fer, or --fer-python)")
        return None
    fps, n = max(r[0] for r in fer_runs), fer_runs[0][1]
    walls = sorted(r[2] for r in fer_runs)
    ratio = ours["fps_best"] / fps
    # Whole process, start to exit, best against best and median against median: what a user waits for.
    whole = walls[0] / ours["process_s_best"]
    whole_median = walls[len(walls) // 2] / ours["process_s_median"]
    print(f"\nfer's video pipeline on the same 1-face video ({n} frames, no output files): {fps:.1f} frames/s best of {repeat}; "
          f"emolens (with its CSV and annotated video) is {ratio:.2f}x as fast")
    print(f"whole process (start-up, imports, models, the video): fer {walls[0]:.2f} s, emolens {ours['process_s_best']:.2f} s "
          f"best of {repeat}: emolens is {whole:.2f}x as fast ({whole_median:.2f}x median against median)")
    return {
        "fps_best": round(fps, 1), "frames": n, "emolens_over_fer": round(ratio, 2),
        "process_s_best": round(walls[0], 2), "process_s_median": round(walls[len(walls) // 2], 2),
        "emolens_over_fer_whole_process": round(whole, 2), "emolens_over_fer_whole_process_median": round(whole_median, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--arch", help="benchmark a randomly initialised model of this architecture instead")
    parser.add_argument("--frames", type=int, default=300, help="frames per test video")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each end-to-end measurement (best and median are reported: the machine may be shared)")
    parser.add_argument("--fer2013", help="FER-2013 archive, for int8 vs fp32 PrivateTest accuracy")
    parser.add_argument("--fer-python", help="Python interpreter of an environment where `fer` is installed")
    parser.add_argument("--detector", help="--detector of `emolens video` (default: the pipeline's), e.g. centerface,coarse_px=0")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    from emolens.models import load_model
    from emolens.pipeline.samples import make_video
    from emolens.preprocessing import PreprocessConfig, prepare_face
    from emolens.runtime.onnx import export_onnx_bytes, quantize_int8

    tmp = Path(tempfile.mkdtemp(prefix="emolens-speed-"))
    model, model_label = _model_file(args, tmp)
    report: dict[str, object] = {"model": model_label, "cpu_cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    print(f"model: {model_label}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at start")

    from skimage import data

    faces = np.stack([prepare_face(x, PreprocessConfig()) for x in data.lfw_subset()[:100]])
    faces = np.concatenate([faces] * 2)[:128]
    net = load_model(model)
    fp32 = export_onnx_bytes(net)
    int8, _ = quantize_int8(fp32, faces[:100])
    int8_file = tmp / "model.int8.onnx"
    int8_file.write_bytes(int8)

    detector_args = ["--detector", args.detector] if args.detector else []
    report["detector"] = args.detector or "pipeline default"
    videos = {n: make_video(tmp / f"faces{n}.mp4", faces=n, frames=args.frames) for n in (1, 4)}
    report["end_to_end"] = e2e = end_to_end_section(model, int8_file, videos, tmp, detector_args, args.repeat)

    report["crop_throughput"] = crop_throughput_section(net, fp32, int8, faces)
    report["peak_rss_mb_benchmark_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    if args.fer2013:
        acc = int8_accuracy(model, Path(args.fer2013))
        report["int8"] = acc
        print(f"\nPrivateTest accuracy ({acc['test_images']} faces): torch {acc['torch_accuracy']}%, onnx fp32 {acc['onnx_fp32_accuracy']}%, "
              f"onnx int8 {acc['onnx_int8_accuracy']}% ({acc['int8_method']}); int8 - fp32 = {acc['int8_minus_fp32_points']} points")

    fer = fer_section(videos[1].path, args.frames, args.fer_python, args.repeat, e2e["1_face"])
    if fer is not None:
        report["fer"] = fer
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
