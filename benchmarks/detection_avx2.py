"""How much work each face detector does on a CPU with AVX2 and no AVX-512: instruction counts.

    python benchmarks/detection_avx2.py                       # one full search, two passes, Haar
    python benchmarks/detection_avx2.py --detectors "centerface,precision=fp32,coarse_px=8" --photos 1 3 6

Issue 13 asks for a face search under 60 ms a photo on an AVX2-only AMD EPYC (Zen 1). Machines of
that kind were lent in early sessions only, and onnxruntime and OpenCV pick their kernels by
the CPU's features, so a newer CPU times other code. Valgrind's CPU has AVX2 and FMA but no
AVX-512 (its `cpuid` says so: programs take their AVX2 paths, as on the Zen 1), and
callgrind counts the instructions a run executes, the same on any machine. Each detector runs
under callgrind twice: once up to its first photo (start, model load, one search of photo 0),
once searching the chosen photos after that; the difference is the work of those photos.

Instructions are not time, but two settings of one network run the same kernels, so their ratio
is a fair ratio of time: the time measured on the Zen 1 for one full fp32 search (174 ms a photo,
docs/detection.md) times the ratio estimates another setting's time there. The ratio to Haar
(234 ms there) is a second, rougher estimate (other code). onnxruntime runs on one thread here:
idle pool threads spin, which callgrind would count as work. Slow: valgrind runs the network
about 100 times slower than the CPU (a few minutes a photo and setting; two at once, `--jobs`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WIDER = ROOT.parent / "shared" / "datasets" / "widerface-val5"
DETECTORS = ("centerface,precision=fp32,coarse_px=0", "centerface,precision=fp32", "haar")
ZEN1_MS = {"centerface,precision=fp32,coarse_px=0": 174.0, "haar": 234.0}  # docs/detection.md, all 394 photos, 2 threads
EVERY = 49  # photos: every 49th of the set (8 of them), indices into that list


def _photos(folder: Path):
    from detection import load_images  # this folder's: python puts a script's folder on the path

    return [bgr for _, bgr, _ in load_images(folder, None, every=EVERY)]


def worker(spec: str, folder: Path, picks: list[int]) -> None:
    """What runs under callgrind: build the detector, search photo 0, then the picked photos."""
    from emolens.faces import create_detector

    photos = _photos(folder)
    detector = create_detector(spec)
    detector.detect(photos[0])  # the first search's one-off work, in both runs
    print("faces", [len(detector.detect(photos[i])) for i in picks])


def one_thread(spec: str) -> str:
    return spec + ",threads=1" if spec.startswith("centerface") and "threads=" not in spec else spec


def instructions(spec: str, folder: Path, picks: list[int]) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--worker", one_thread(spec), "--data", str(folder), "--photos", *map(str, picks)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or not found:
        raise SystemExit(f"{spec}: valgrind failed ({run.returncode}): {run.stderr[-800:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    ap.add_argument("--photos", nargs="*", type=int, default=[1, 3, 6], help=f"indices into every {EVERY}th photo of the set (0 is the warm-up)")
    ap.add_argument("--data", type=Path, default=DEFAULT_WIDER)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.photos)
    runs = [(spec, picks) for spec in args.detectors for picks in ([], args.photos)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = list(pool.map(lambda r: instructions(r[0], args.data, r[1]), runs))
    per_photo = {spec: (counts[2 * k + 1] - counts[2 * k]) / len(args.photos) for k, spec in enumerate(args.detectors)}
    print(f"instructions per photo on valgrind's AVX2 CPU (photos {args.photos} of every {EVERY}th WIDER FACE photo):\n")
    print("| detector | instructions per photo | against one full search | estimate on the Zen 1 (from one search) | (from Haar) |")
    print("|---|---|---|---|---|")
    full, haar = per_photo.get(DETECTORS[0]), per_photo.get("haar")
    for spec, n in per_photo.items():
        ratio = f"{n / full:.3f}x" if full else ""
        from_full = f"{ZEN1_MS[DETECTORS[0]] * n / full:.0f} ms" if full else ""
        from_haar = f"{ZEN1_MS['haar'] * n / haar:.0f} ms" if haar else ""
        print(f"| `{spec}` | {n / 1e9:.3f} G | {ratio} | {from_full} | {from_haar} |")


if __name__ == "__main__":
    main()
