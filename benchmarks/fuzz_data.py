"""Hostile datasets, model files and kills against emolens' data layer, model loading and training.

    python benchmarks/fuzz_data.py            # every probe, ~70 s on 2 cores
    python benchmarks/fuzz_data.py --quick    # a 256 MiB zip member instead of 2 GiB, one kill instead of three
    python benchmarks/fuzz_data.py --probes zip-bomb,model-size-1024 --json fuzz.json

The server has its own script (benchmarks/fuzz_server.py). This one builds every bad input in a
temporary folder, then runs each probe in a fresh process, one at a time, and reads that
process's own peak memory (`ru_maxrss` from `os.wait4`), so each figure is the probe's alone.
CLI probes run `python -m emolens ...` as that process; API probes run this file with
`--child NAME`, which prints one JSON result line. Every process has a time limit (a hang is
reported as one), every loop a count, threads are pinned to one (OMP_NUM_THREADS=1), the dataset
cache lives in the temporary folder, and nothing touches the network.

What each probe expects is what issue 14 asked for: a bad item is one skipped item whose message
names it, a bad file is one error line (exit 1), never a traceback, a hang or a blow-up in
memory; a killed training run resumes to a model file whose weights hash to what it records.
The last column says whether that held. The regression tests keep the same inputs small:
tests/test_data_robust.py, tests/test_model_files.py, tests/test_train_kill.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = 1 << 20
HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
RESULT = "@@fuzz-result "  # prefix of the one line a child prints for its parent
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
PER_CLASS = 20  # good 48x48 faces per class folder: 140 in all


# --- inputs --------------------------------------------------------------------------------------


def png_bytes(seed: int, side: int = 48) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A 4x4 PNG whose IHDR (with a valid CRC) declares width x height: 70 bytes, a huge image."""
    data = bytearray(png_bytes(0, side=4))
    data[16:24] = struct.pack(">II", width, height)  # after the signature (8), IHDR length (4) and type (4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def faces_folder(root: Path) -> Path:
    for c, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for k in range(PER_CLASS):
            (root / cls / f"{k}.png").write_bytes(png_bytes(100 * c + k))
    return root


def add_faces(zf: zipfile.ZipFile) -> None:
    for c, cls in enumerate(CLASSES):
        for k in range(PER_CLASS):
            zf.writestr(f"{cls}/{k}.png", png_bytes(100 * c + k))


def odd_files(folder: Path, suffix: str, elsewhere: Path) -> None:
    """A dangling link, a named pipe and a link to /dev/zero, each named like an image."""
    (folder / f"gone{suffix}").symlink_to(elsewhere / f"nowhere{suffix}")
    os.mkfifo(folder / f"pipe{suffix}")
    (folder / f"zero{suffix}").symlink_to("/dev/zero")


def astronaut_jpeg(path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(path, "JPEG", quality=90)


def build_data(root: Path, zip_member_bytes: int) -> dict[str, float]:
    """Every hostile dataset under `root`. -> seconds taken by the slow ones."""
    import warnings

    took: dict[str, float] = {}
    faces_folder(root / "clean")
    faces_folder(root / "cache-faces")

    bomb = faces_folder(root / "bomb")
    (bomb / "happy" / "bomb.png").write_bytes(bomb_png(50000, 50000))  # PIL: DecompressionBombError

    odd = faces_folder(root / "odd-in-class")
    odd_files(odd / "happy", ".png", root)
    (odd / "sad" / os.fsdecode(b"\xff.png")).write_bytes(png_bytes(999))  # a Latin-1 name on a UTF-8 system
    (odd / "sad" / "ok-link.png").symlink_to(odd / "sad" / "0.png")  # a link to an image is an image

    beside = faces_folder(root / "odd-beside")
    with open(beside / "video.mp4", "wb") as f:
        f.truncate(1536 * MB)  # sparse: 1.5 GB long, no disk used
    odd_files(beside, "", root)

    for name in ("photos-bomb", "photos-odd", "photos-good"):
        (root / name).mkdir()
    astronaut_jpeg(root / "photos-bomb" / "astronaut.jpg")
    (root / "photos-bomb" / "bomb.png").write_bytes(bomb_png(50000, 50000))
    astronaut_jpeg(root / "photos-odd" / os.fsdecode(b"\xff.jpg"))
    odd_files(root / "photos-odd", ".jpg", root)
    astronaut_jpeg(root / "photos-good" / "astronaut.jpg")

    pixels = " ".join(["128"] * 48 * 48)
    usage = ["Training"] * 800 + ["PublicTest"] * 100 + ["PrivateTest"] * 100
    lines = [b"emotion,pixels,Usage"] + [f"{k % 7},{pixels},{u}".encode() for k, u in enumerate(usage)]
    lines.insert(11, f"3,{pixels},Train\xffing".encode("latin-1"))  # row 10: a byte that is not UTF-8
    lines.insert(22, f"\u00b2,{pixels},Training".encode())  # row 21: '²' (isdigit() but not int())
    lines.insert(33, f"\u0663,{pixels},Training".encode())  # row 32: Arabic-Indic 3 (int() reads it as 3)
    lines.insert(44, f"\uff13,{pixels},PublicTest".encode())  # row 43: full-width 3
    (root / "csv").mkdir()
    (root / "csv" / "fer2013.csv").write_bytes(b"\n".join(lines) + b"\n")

    start = time.perf_counter()
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        add_faces(zf)
        with zf.open("happy/zeros.png", "w", force_zip64=True) as member:  # a real member of zeros, not a patched header
            chunk = bytes(16 * MB)
            for _ in range(zip_member_bytes // len(chunk)):
                member.write(chunk)
    took["zip"] = time.perf_counter() - start

    with zipfile.ZipFile(root / "good.zip", "w") as zf:
        add_faces(zf)
    data = (root / "good.zip").read_bytes()
    (root / "cut.zip").write_bytes(data[: len(data) // 2])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(root / "names.zip", "w") as zf:
            add_faces(zf)
            zf.writestr(zipfile.ZipInfo("../happy/evil.png"), png_bytes(7))
            zf.writestr(zipfile.ZipInfo("/abs/happy/evil.png"), png_bytes(8))
            zf.writestr("happy/dup.png", png_bytes(5))  # good first copy, broken second
            zf.writestr("happy/dup.png", b"broken")
    return took


def _rewrite(src: Path, dst: Path, edit: Callable[[dict], None] | None = None, raw: str | None = None) -> Path:
    """A copy of the model file `src` whose config (or raw metadata text) was edited."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        cfg = json.loads(f.metadata()["emolens_config"])
    if edit:
        edit(cfg)
    save_file(tensors, str(dst), metadata={"emolens_config": raw if raw is not None else json.dumps(cfg)})
    return dst


def build_models(root: Path) -> dict[str, Path]:
    """A valid small model file and the bad ones, named by probe."""
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    folder = root / "models"
    folder.mkdir()
    torch.manual_seed(0)
    small = build_model(ModelConfig(arch="vgg_fer", arch_kwargs={"widths": [8, 16, 32], "hidden": 32, "dropout": 0.1}, name="small"))
    good = save_model(small, folder / "good.safetensors")
    cnn = save_model(build_model(ModelConfig(arch="simple_cnn")), folder / "cnn.safetensors", half=True)  # dense layer grows with side²

    def claim_1024(c: dict) -> None:  # simple_cnn at 1024: a 2.1-billion-parameter dense layer, 8.4 GB
        c["preprocess"].update(image_size=1024, input_size=1024)

    return {
        "good": good,
        "temperature-nan": _rewrite(good, folder / "temperature-nan.safetensors", lambda c: c.update(temperature=float("nan"))),
        "temperature-0": _rewrite(good, folder / "temperature-0.safetensors", lambda c: c.update(temperature=0)),
        "metadata-list": _rewrite(good, folder / "metadata-list.safetensors", raw="[1, 2, 3]"),
        "size-1024": _rewrite(cnn, folder / "size-1024.safetensors", claim_1024),
        "labels-6": _rewrite(good, folder / "labels-6.safetensors", lambda c: c["labels"].remove("disgust")),
    }


# --- children: run inside the measured process ----------------------------------------------------


def _load(path: Path, **kw) -> dict[str, Any]:
    import warnings

    from emolens.data import load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path, progress=False, **kw)
    return {"loaded": len(ds), "skipped": list(ds.skipped), "warnings": [str(w.message) for w in caught],
            "labels": ds.labels.tolist(), "images_sum": int(ds.images.astype("int64").sum())}


def child_load(root: Path, target: str) -> dict[str, Any]:
    res = _load(root / target)  # with the cache, as users load: its key hashes the source
    del res["labels"], res["images_sum"]
    return res


def child_cache(root: Path, target: str) -> dict[str, Any]:
    """Load (writes a cache entry), corrupt the entry's labels, load again: expect a re-decode."""
    import numpy as np

    from emolens.data.cache import cache_dir

    os.environ["EMOLENS_CACHE_DIR"] = str(root / "cache-probe")  # a folder of its own: one entry, this dataset's
    first = _load(root / target)
    (entry,) = (cache_dir() / "datasets").glob("*.npz")
    with np.load(entry, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["labels"] = arrays["labels"] + 7  # 7..13: no such emotion
    with open(entry, "wb") as f:
        np.savez(f, **arrays)
    second = _load(root / target)
    third = _load(root / target)  # the re-decode rewrote a good entry
    return {"loaded": second["loaded"], "skipped": second["skipped"], "warnings": second["warnings"],
            "same_as_first": second["labels"] == first["labels"] and second["images_sum"] == first["images_sum"],
            "third_warnings": third["warnings"]}


def child_models(root: Path, names: str) -> dict[str, Any]:
    """EmotionRecognizer(model=path) for each bad file: one ModelError each, and the good file loads."""
    from emolens.errors import ModelError
    from emolens.pipeline import EmotionRecognizer

    folder = root / "models"
    out: dict[str, Any] = {"files": {}}
    for name in names.split(","):
        path = folder / f"{name}.safetensors"
        try:
            rec = EmotionRecognizer(model=path)
            out["files"][name] = {"loaded": True, "temperature": rec.config.temperature}
        except ModelError as exc:
            out["files"][name] = {"error": "ModelError", "message": str(exc)}
    return out


def child_verify(root: Path, runs: str) -> dict[str, Any]:
    """Each run's best.safetensors: its weights' sha256 (the trainer's weights_sha256)
    against what the file and best.json record, plus the best checkpoint's epoch and stray temp files."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from emolens.training.checkpoint import read_checkpoint
    from emolens.training.checkpoint import weights_sha256 as sha

    out = {}
    for name in runs.split(","):
        run = root / "runs" / name
        path = run / "best.safetensors"
        if not path.is_file():
            out[name] = {"error": "no best.safetensors"}
            continue
        weights = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            header = json.loads(f.metadata()["emolens_config"])
        twin = json.loads((run / "best.json").read_text())
        _, _, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
        out[name] = {
            "sha256": sha(weights), "recorded": twin["training"]["weights_sha256"], "twin_is_header": twin == header,
            "best_epoch": header["metrics"]["best_epoch"], "checkpoint_epoch": meta["epoch"],
            "tmp_files": [str(p.relative_to(run)) for p in run.rglob("*.tmp")],
        }
    return out


def child_build(root: Path, zip_bytes: str) -> dict[str, Any]:
    """Every input, built in a child so the parent stays small: a process inherits the peak RSS
    of the one that started it (Linux keeps it across fork and exec), so the parent's is each
    figure's floor."""
    took = build_data(root, int(zip_bytes))
    build_models(root)
    return {"zip_seconds": took["zip"], "zip_mb": (root / "bomb.zip").stat().st_size / MB}


CHILDREN: dict[str, Callable[[Path, str], dict[str, Any]]] = {
    "build": child_build, "load": child_load, "cache": child_cache, "models": child_models, "verify": child_verify,
}


def run_child(name: str, root: Path, arg: str) -> int:
    try:
        result = CHILDREN[name](root, arg)
    except BaseException as exc:  # the parent reports what escaped, traceback or not
        import traceback

        from emolens.errors import EmolensError

        expected = isinstance(exc, EmolensError)  # one message, as the CLI would print it
        if not expected:
            traceback.print_exc()
        result = {"error": type(exc).__name__, "message": str(exc)[:300], "traceback": not expected}
    print(RESULT + json.dumps(result), flush=True)
    return 0


# --- the measured process --------------------------------------------------------------------------


def measure(argv: list[str], env: dict[str, str], timeout: float, kill_when: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run argv in a fresh process. -> exit code (negative: the signal), seconds, its own peak RSS,
    output, whether it timed out; with kill_when, SIGKILL it as soon as that returns True."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=REPO)
        killed = timed_out = False
        while True:  # bounded by `timeout`
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if kill_when is not None and not killed and kill_when():
                proc.send_signal(signal.SIGKILL)
                killed = True
            if not timed_out and time.perf_counter() - start > timeout:
                proc.kill()
                timed_out = True
            time.sleep(0.002 if kill_when is not None else 0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT):])
    return {"rc": proc.returncode, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "stdout": stdout, "stderr": stderr,
            "timed_out": timed_out, "killed": killed and not timed_out, "result": result}


def own_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scrub(m: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The outputs without the temporary folder's path, so messages read `photos-bomb/bomb.png: ...`."""
    m["stdout"], m["stderr"] = m["stdout"].replace(prefix, ""), m["stderr"].replace(prefix, "")
    if m["result"] is not None:
        m["result"] = json.loads(json.dumps(m["result"]).replace(prefix, ""))
    return m


def emolens(*args: str) -> list[str]:
    return [sys.executable, "-m", "emolens", *args]


def child(name: str, root: Path, arg: str) -> list[str]:
    return [sys.executable, str(HERE), "--child", name, "--root", str(root), arg]


# --- reading the outcome -----------------------------------------------------------------------------


def short(text: str, n: int = 90) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def failure(m: dict[str, Any]) -> str | None:
    """What went wrong with the process itself: a hang, a traceback, a kill by the OS."""
    if m["timed_out"]:
        return "HANG: still running at the time limit, killed"
    if "Traceback (most recent call last)" in m["stderr"]:
        last = [ln for ln in m["stderr"].splitlines() if ln.strip()][-1]
        return f"TRACEBACK: {short(last, 120)}"
    if m["rc"] < 0:
        return f"died of signal {-m['rc']}"
    return None


def skips_text(skipped: list[str]) -> str:
    return f"{len(skipped)} skipped" + (f" (first: `{short(skipped[0], 80)}`)" if skipped else "")


def expect_load(loaded: int, skipped: list[str]) -> Callable[[dict], tuple[str, bool]]:
    """A load that keeps `loaded` images and skips items whose messages contain these strings."""
    def check(m: dict) -> tuple[str, bool]:
        r = m["result"] or {}
        if "error" in r:
            return f"{r['error']}: {short(r['message'])}", False
        msgs = "\n".join(r["skipped"])
        missing = [s for s in skipped if s not in msgs]
        text = f"{r['loaded']} images loaded, {skips_text(r['skipped'])}"
        if missing:
            text += f"; no message names {missing}"
        ok = r["loaded"] == loaded and len(r["skipped"]) == len(skipped) and not missing
        return text, ok
    return check


def expect_error(*needles: str) -> Callable[[dict], tuple[str, bool]]:
    """A load refused with one DataError whose message contains the needles."""
    def check(m: dict) -> tuple[str, bool]:
        r = m["result"] or {}
        if "error" not in r:
            return f"loaded {r.get('loaded')} images, no error", False
        ok = r["error"] == "DataError" and all(n in r["message"] for n in needles)
        return f"{r['error']}: `{short(r['message'])}`", ok
    return check


def expect_stats(loaded: int, skipped: list[str]) -> Callable[[dict], tuple[str, bool]]:
    def check(m: dict) -> tuple[str, bool]:
        out = m["stdout"]
        listed = [ln.strip()[2:] for ln in out.splitlines() if ln.startswith("  - ")]
        head = next((ln for ln in out.splitlines() if " images, " in ln), "")
        n = int(head.split(" images, ")[0].rsplit(", ", 1)[-1]) if head else -1
        missing = [s for s in skipped if not any(s in ln for ln in listed)]
        text = f"exit {m['rc']}; {n} images, {len(listed)} listed as skipped" + (f" (first: `{short(listed[0], 80)}`)" if listed else "")
        return text, m["rc"] == 0 and n == loaded and len(listed) == len(skipped) and not missing
    return check


def expect_predict(table: Path, photo: str, skipped: list[str]) -> Callable[[dict], tuple[str, bool]]:
    def check(m: dict) -> tuple[str, bool]:
        lines = [ln[len("skipped  "):] for ln in m["stderr"].splitlines() if ln.startswith("skipped  ")]
        wrote = table.is_file() and photo in table.read_text()
        missing = [s for s in skipped if not any(s in ln for ln in lines)]
        summary = next((ln for ln in m["stdout"].splitlines() if " read, " in ln), "")
        unread = int(summary.split(" could not be read")[0].rsplit(", ", 1)[-1]) if "could not be read" in summary else 0
        text = (f"exit {m['rc']}; {len(lines)} named as skipped" + (f" (first: `{short(lines[0], 70)}`)" if lines else "")
                + f", {unread} counted as could not be read; predictions.json {'written with' if wrote else 'WITHOUT'} `{photo}`")
        if missing:
            text += f"; no message names {missing}"
        return text, m["rc"] == 0 and wrote and not missing and len(lines) == len(skipped)
    return check


def expect_model_error(needle: str) -> Callable[[dict], tuple[str, bool]]:
    """`emolens predict --model BAD`: exit 1 and one line on stderr, naming the field."""
    def check(m: dict) -> tuple[str, bool]:
        err = [ln for ln in m["stderr"].splitlines() if ln.strip()]
        text = f"exit {m['rc']}, {len(err)} line{'s' if len(err) != 1 else ''} on stderr: `{short(err[-1] if err else '', 100)}`"
        return text, m["rc"] == 1 and len(err) == 1 and err[0].startswith("emolens: error:") and needle in err[0]
    return check


# --- the probes ----------------------------------------------------------------------------------------


MODEL_PROBES = {  # probe name -> what its ModelError must say
    "temperature-nan": "temperature: expected a finite number in [0.01, 100]",
    "temperature-0": "temperature: expected a finite number in [0.01, 100]",
    "metadata-list": "must be a JSON object, found a list",
    "size-1024": "preprocess.image_size: expected an integer in [8, 256], found 1024",
    "labels-6": "lists 6 emotions",
}


def data_probes(root: Path, zip_label: str) -> list[dict[str, Any]]:
    n = len(CLASSES) * PER_CLASS
    out = root / "out"
    probes = [
        ("clean", f"control: `load_dataset` on a clean folder ({n} PNGs in 7 class folders)", child("load", root, "clean"),
         expect_load(n, [])),
        ("bomb-stats", f"`data stats` on {n} PNGs + 1 PNG declaring 50000x50000 (70 bytes)",
         emolens("data", "stats", str(root / "bomb"), "--out", str(out / "stats-bomb"), "--no-cache"),
         expect_stats(n, ["happy/bomb.png: image too large"])),
        ("bomb-load", "`load_dataset` on the same folder", child("load", root, "bomb"), expect_load(n, ["happy/bomb.png: image too large"])),
        ("bomb-predict", "`emolens predict` on a folder: astronaut JPEG + the 50000x50000 PNG",
         emolens("predict", str(root / "photos-bomb"), "--out", str(out / "predict-bomb"), "--no-save"),
         expect_predict(out / "predict-bomb" / "predictions.json", "astronaut.jpg", ["bomb.png: image too large"])),
        # A folder's odd entries are named and never opened.
        ("odd-predict", "`emolens predict` on a folder: astronaut JPEG named `\\xff.jpg`, a dangling link, a FIFO, a link to /dev/zero",
         emolens("predict", str(root / "photos-odd"), "--out", str(out / "predict-odd"), "--no-save"),
         expect_predict(out / "predict-odd" / "predictions.json", "\\\\xff.jpg", ["gone.jpg", "pipe.jpg", "zero.jpg"])),
        ("odd-predict-named", "the same, the three odd files also named on the command line",
         emolens("predict", str(root / "photos-odd"), *(str(root / "photos-odd" / f) for f in ("gone.jpg", "pipe.jpg", "zero.jpg")),
                 "--out", str(out / "predict-odd-named"), "--no-save"),
         expect_predict(out / "predict-odd-named" / "predictions.json", "\\\\xff.jpg", ["gone.jpg", "pipe.jpg", "zero.jpg"])),
        ("odd-in-class", f"`data stats` on {n} PNGs + in class folders: dangling link, FIFO, link to /dev/zero, non-UTF-8 name, a link to a good PNG",
         emolens("data", "stats", str(root / "odd-in-class"), "--out", str(out / "stats-odd"), "--no-cache"),
         expect_stats(n + 1, ["happy/gone.png: dangling symbolic link", "happy/pipe.png: not a regular file",
                              "happy/zero.png: not a regular file", "sad/\\xff.png: file name is not valid UTF-8"])),
        ("odd-beside", f"`load_dataset` on {n} PNGs + beside the class folders: 1.5 GB sparse video, FIFO, link to /dev/zero, dangling link",
         child("load", root, "odd-beside"), expect_load(n, [])),
        ("csv", "`load_dataset` on fer2013.csv: 1000 good rows + rows with byte 0xff, emotion `²`, `٣`, `３`",
         child("load", root, "csv/fer2013.csv"),
         expect_load(1000, ["row 10 (line 12): byte 0xff", "row 21 (line 23): unknown emotion label '²'",
                            "row 32 (line 34): unknown emotion label '٣'", "row 43 (line 45): unknown emotion label '３'"])),
        ("zip-bomb", f"`load_dataset` on a zip: {n} PNGs + a real {zip_label} member of zeros ({{zip_mb}} MB file)",
         child("load", root, "bomb.zip"), expect_load(n, ["happy/zeros.png: member declares"])),
        ("zip-truncated", f"`load_dataset` on the first half of a zip of {n} PNGs", child("load", root, "cut.zip"),
         expect_error("cut.zip: damaged zip file", "download it again")),
        ("zip-names", f"`load_dataset` on a zip: {n} PNGs + `../happy/evil.png`, `/abs/happy/evil.png`, `happy/dup.png` twice (good, then broken)",
         child("load", root, "names.zip"),
         expect_load(n + 1, ["../happy/evil.png: unsafe member name", "/abs/happy/evil.png: unsafe member name",
                             "happy/dup.png: 2 members share this name; copy 1 is used"])),
    ]
    return [{"name": name, "tried": tried, "argv": argv, "check": check} for name, tried, argv, check in probes]


def cache_check(m: dict) -> tuple[str, bool]:
    r = m["result"] or {}
    if "error" in r:
        return f"{r['error']}: {short(r['message'])}", False
    warned = [w for w in r["warnings"] if "dataset cache" in w]
    text = (f"{r['loaded']} images, re-decoded {'with' if warned else 'WITHOUT'} a warning"
            + (f" (`{short(warned[0], 80)}`)" if warned else "")
            + f"; same images and labels as before: {'yes' if r['same_as_first'] else 'NO'}"
            + f"; next load warns: {'yes' if r['third_warnings'] else 'no'}")
    ok = bool(warned) and r["same_as_first"] and any("labels outside 0..6" in w for w in warned) and not r["third_warnings"]
    return text, ok


def model_probes(root: Path) -> list[dict[str, Any]]:
    folder = root / "models"
    photo = root / "photos-good"
    tried = {
        "temperature-nan": "temperature NaN", "temperature-0": "temperature 0", "metadata-list": "metadata `[1, 2, 3]`",
        "size-1024": "simple_cnn file (10 MB) claiming input size 1024 (an 8.4 GB model)", "labels-6": "6 labels for 7 outputs",
    }
    probes = []
    for name, needle in MODEL_PROBES.items():
        path = folder / f"{name}.safetensors"
        probes.append({"name": f"model-{name}", "tried": f"`emolens predict --model` a file with {tried[name]}",
                       "argv": emolens("predict", str(photo), "--model", str(path), "--out", str(root / "out" / name), "--no-save"),
                       "check": expect_model_error(needle)})

    def api_check(m: dict) -> tuple[str, bool]:
        r = (m["result"] or {}).get("files", {})
        errors = [n for n, v in r.items() if v.get("error") == "ModelError"]
        good = r.get("good", {}).get("loaded", False)
        wrong = [n for n in MODEL_PROBES if n not in errors or MODEL_PROBES[n] not in r[n].get("message", "")]
        text = f"{len(errors)} of {len(MODEL_PROBES)} raised ModelError naming the field; the valid file loads: {'yes' if good else 'NO'}"
        return text + (f"; wrong: {wrong}" if wrong else ""), good and not wrong

    probes.append({"name": "model-api", "tried": f"`EmotionRecognizer(model=path)` on the {len(MODEL_PROBES)} files above + a valid one",
                   "argv": child("models", root, ",".join(["good", *MODEL_PROBES])), "check": api_check})
    return probes


# --- training killed and resumed ------------------------------------------------------------------------


# Monitored by val_f1, the smoke run's best epochs are 1 and 3, with 2 worse between: the order in
# which issue 14's kill left an older best's weights under a newer best's metrics.
MONITOR = "val_f1"
KILL_MOMENTS = {  # name -> (what the kill waits for, predicate on the run folder); polled every 2 ms
    "kill-last-1": ("epoch 1's `checkpoints/last.safetensors` appears", lambda run: (run / "checkpoints" / "last.safetensors").exists()),
    "kill-epoch-2": ("`history.json` lists epoch 1 (epoch 2 training)", lambda run: _epoch(run / "history.json") >= 1),
    "kill-last-3": ("epoch 3's `checkpoints/last.json` appears (before its best checkpoint)", lambda run: _epoch(run / "checkpoints" / "last.json") >= 3),
}


def _epoch(path: Path) -> int:
    """The latest epoch a history.json or checkpoint twin records; 0 while it is missing or half-written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    return len(data) if isinstance(data, list) else int(data.get("epoch", 0))


def _state(run: Path) -> str:
    """The files a kill left, in short: which checkpoints and model file, and `last`'s epoch."""
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", ".tmp"))
    epochs = {k: _epoch(run / "checkpoints" / f"{k}.json") or "-" for k in ("last", "best")}
    return (f"{len(files)} file{'s' if len(files) != 1 else ''}; checkpoint twins: last epoch {epochs['last']}, best epoch {epochs['best']}"
            + (", a `.tmp` left" if any(f.endswith(".tmp") for f in files) else ""))


def train_probes(root: Path, env: dict[str, str], moments: list[str], timeout: float) -> list[dict[str, Any]]:
    """One uninterrupted run, then one run per kill moment: started, SIGKILLed, resumed."""
    runs = root / "runs"
    common = ["configs/smoke.yaml", "--set", f"run.out_dir={runs}", "--set", "run.progress=false", "--set", "run.plots=false",
              "--set", f"schedule.monitor={MONITOR}"]
    rows = []
    ref = measure(emolens("train", *common, "--name", "ref"), env, timeout)
    rows.append({"name": "train-ref", "tried": f"`emolens train configs/smoke.yaml --set schedule.monitor={MONITOR}` uninterrupted (synthetic faces, 3 epochs)",
                 "m": ref, "parts": {"ref": ref}})
    for name in moments:
        what, ready = KILL_MOMENTS[name]
        run = runs / name
        first = measure(emolens("train", *common, "--name", name), env, timeout, kill_when=lambda run=run, ready=ready: ready(run))
        state = _state(run) if run.exists() else "no run folder"
        again = measure(emolens("train", "--resume", str(run), "--set", "run.progress=false"), env, timeout)
        rows.append({"name": name, "tried": f"SIGKILL when {what}, then `emolens train --resume`", "state": state,
                     "m": {"rc": again["rc"], "seconds": first["seconds"] + again["seconds"], "peak_mb": max(first["peak_mb"], again["peak_mb"]),
                           "stdout": again["stdout"], "stderr": again["stderr"], "timed_out": first["timed_out"] or again["timed_out"],
                           "result": None},
                     "parts": {"first": first, "again": again}})
    names = ["ref", *moments]
    verify = measure(child("verify", root, ",".join(names)), env, timeout)
    checks = verify["result"] or {}
    ref_sha = checks.get("ref", {}).get("sha256")
    for row in rows:
        # The deliberate kill is no failure; a first run that was never killed is judged like any other.
        parts = [x for key, x in row["parts"].items() if key != "first" or not x["killed"]]
        row["error"] = next((f for f in map(failure, parts) if f), None)
        v = checks.get(row["name"].removeprefix("train-"), {"error": f"verify: {failure(verify) or 'no result'}"})
        first = row["parts"].get("first")
        head = ""
        if first is not None:
            head = (f"killed ({row['state']}); resume exit {row['m']['rc']}; " if first["killed"]
                    else f"NOT killed: finished first (exit {first['rc']}); ")
        if "error" in v:
            row["outcome"], row["ok"] = head + str(v["error"]), False
            continue
        same = v["sha256"] == v["recorded"]
        text = (head + f"weights sha256 {v['sha256'][:12]}… {'=' if same else '!='} best.json's {v['recorded'][:12]}…"
                + f"; best.json = file header: {'yes' if v['twin_is_header'] else 'NO'}; best epoch {v['best_epoch']} (checkpoint {v['checkpoint_epoch']})")
        if first is not None:
            text += f"; = uninterrupted run: {'yes' if v['sha256'] == ref_sha else 'no'}"
        if v["tmp_files"]:
            text += f"; temp files left: {v['tmp_files']}"
        row["outcome"] = text
        row["ok"] = row["error"] is None and same and v["twin_is_header"] and v["best_epoch"] == v["checkpoint_epoch"] and not v["tmp_files"] and row["m"]["rc"] == 0
    return rows


# --- main ----------------------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| probe | tried | outcome | error | s | peak MB | as required |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r["m"]
        lines.append(f"| {r['name']} | {r['tried']} | {r['outcome']} | {r['error'] or '—'} | {m['seconds']:.1f} | {m['peak_mb']:.0f} | "
                     f"{'yes' if r['ok'] else '**NO**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a 256 MiB zip member instead of 2 GiB, and one kill moment instead of three")
    p.add_argument("--probes", default="", help="comma-separated probe names (default: all); 'train' for the kill probes")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds each process may run before it counts as a hang")
    p.add_argument("--json", type=Path, help="also write the rows (outputs trimmed) here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("arg", nargs="?", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return run_child(args.child, args.root, args.arg)

    wanted = set(filter(None, args.probes.split(",")))
    zip_bytes = (256 if args.quick else 2048) * MB
    zip_label = "256 MiB" if args.quick else "2 GiB"
    root = Path(tempfile.mkdtemp(prefix="emolens-fuzz-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "EMOLENS_CACHE_DIR": str(root / "cache"), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        print(f"building inputs in {root} ...", file=sys.stderr)
        built = measure(child("build", root, str(zip_bytes)), env, args.timeout)
        if built["result"] is None or "error" in built["result"]:
            sys.exit(f"building the inputs failed:\n{built['stderr'][-3000:]}")
        zip_mb = built["result"]["zip_mb"]
        print(f"  built in {built['seconds']:.0f} s (the {zip_label} zip member: {built['result']['zip_seconds']:.1f} s, "
              f"{zip_mb:.1f} MB file); this process's peak RSS: {own_peak_mb():.0f} MB", file=sys.stderr)

        probes = data_probes(root, zip_label)
        probes.append({"name": "cache-label", "tried": f"`load_dataset` twice on {len(CLASSES) * PER_CLASS} PNGs, the cache entry's labels "
                       "set to 7..13 between", "argv": child("cache", root, "cache-faces"), "check": cache_check})
        probes += model_probes(root)
        rows = []
        for probe in probes:
            if wanted and probe["name"] not in wanted:
                continue
            print(f"  {probe['name']} ...", file=sys.stderr)
            m = scrub(measure(probe["argv"], env, args.timeout), f"{root}/")
            outcome, ok = probe["check"](m)
            err = failure(m) or ((m["result"] or {}).get("error") if (m["result"] or {}).get("traceback") else None)
            rows.append({"name": probe["name"], "tried": probe["tried"].replace("{zip_mb}", f"{zip_mb:.1f}"), "m": m,
                         "outcome": outcome, "ok": ok and err is None, "error": err})
        if not wanted or "train" in wanted:
            print("  train: reference run, then killed and resumed ...", file=sys.stderr)
            moments = list(KILL_MOMENTS)[:1] if args.quick else list(KILL_MOMENTS)
            rows += train_probes(root, env, moments, args.timeout)

        print(f"\n`python benchmarks/fuzz_data.py{' --quick' if args.quick else ''}`: {len(rows)} probes in "
              f"{time.perf_counter() - start:.0f} s, {sum(r['ok'] for r in rows)} as required\n")
        print(table(rows))
        if args.json:
            keep = ("rc", "seconds", "peak_mb", "timed_out", "result")
            args.json.write_text(json.dumps([{**{k: v for k, v in r.items() if k not in ("m", "parts")},
                                              "process": {k: r["m"][k] for k in keep}, "stderr_tail": r["m"]["stderr"][-2000:]}
                                             for r in rows], indent=1, default=str))
        return 0 if all(r["ok"] for r in rows) else 1
    finally:
        if args.keep:
            print(f"inputs and outputs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
