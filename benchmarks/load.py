"""Load test of the HTTP API on loopback: N requests from C concurrent clients, then p50/p99/req/s.

    python benchmarks/load.py                                  # starts its own server, 2000 x 16
    python benchmarks/load.py --model runs/exp/best.safetensors --workers 2
    python benchmarks/load.py --url http://127.0.0.1:8000      # a server you started
    python benchmarks/load.py --recall ../shared/datasets/widerface-val5/wider_face_val5_bbx_gt.txt \
        --recall-images ../shared/datasets/widerface-val5/widerface-val5.zip   # the server's face search vs the pipeline's

Without --url it starts `emolens serve` on a free loopback port in a child process (so the
clients do not share the server's interpreter), waits for /healthz, and stops it at the end.
Without --model it serves the shipped model, or, when none is installed, a randomly
initialised simple_cnn: detection, decoding and the network cost the same whatever the
weights, so the timings hold. Only loopback addresses are accepted as targets. The run is
bounded by --requests and --max-seconds; it exits 1 when any request failed.

--recall checks that the server's speed is not bought with missed faces: on real photos (WIDER
FACE, shrunk to --recall-side, the page's camera frames' size), the recall of the detector as
`emolens serve` sets it up (ServerLimits.min_face_size, or --min-face-size; --detector too)
against the pipeline's smallest face, with the time per image, in this process (detection is
all that differs between the two).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


def is_loopback(host: str) -> bool:
    from emolens.serving.server import is_loopback as check

    return check(host)


def default_image() -> bytes:
    """The test photo: scikit-image's astronaut (512x512, one frontal face) as a JPEG."""
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def recall_images(gt_file: Path, images: Path, side: int):
    """(gray image shrunk to `side`, its faces scaled alike) for each WIDER FACE image, from a folder or the zip."""
    import zipfile

    import cv2

    from emolens.faces.widerface import read_ground_truth

    archive = zipfile.ZipFile(images) if images.suffix == ".zip" else None
    names = {n.split("images/", 1)[-1]: n for n in archive.namelist()} if archive else {}
    for item in read_ground_truth(gt_file):
        data = archive.read(names[item.path]) if archive else (images / item.path).read_bytes()
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        s = side / max(gray.shape)
        gray = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        faces = tuple(replace(f, box=tuple(round(v * s) for v in f.box)) for f in item.faces)
        yield gray, faces


def measure_recall(gt_file: Path, images: Path, side: int, detector_spec: str | None = None, server_min_face: int | None = None) -> dict:
    """Recall by face height (40 and 64 px and up), false detections and ms per image, for the
    server's smallest face (`server_min_face`, default emolens serve's) and the pipeline's, on the
    same shrunk photos, with `detector_spec` (`--detector`; default: the pipeline's)."""
    from emolens.faces import create_detector
    from emolens.faces.widerface import DetectionTally, match
    from emolens.pipeline.defaults import PIPELINE
    from emolens.runtime.devices import configure_threads
    from emolens.serving.limits import ServerLimits

    configure_threads(workers=ServerLimits().workers)  # each worker searches on its own share, as when serving
    photos = list(recall_images(gt_file, images, side))
    out = {}
    for label, size in (("server", server_min_face or ServerLimits().min_face_size), ("pipeline", PIPELINE.min_face_size)):
        detector = create_detector(detector_spec or PIPELINE.detector, min_face_size=size)
        tally, big, big_found, seconds = DetectionTally(), 0, 0, 0.0
        for gray, faces in photos:
            t0 = time.perf_counter()
            dets = detector.detect(gray, gray)
            seconds += time.perf_counter() - t0
            tally.add(faces, dets)
            found, _ = match(faces, dets)
            for face, hit in zip(faces, found, strict=True):
                if not face.invalid and face.box[3] >= 64:
                    big, big_found = big + 1, big_found + hit
        summary = tally.summary()
        out[label] = {
            "detector": detector.name, "min_face_size": size, "images": summary["images"],
            "found_40px": f"{tally.found[40]}/{tally.faces[40]}", "recall_40px": round(summary["recall"]["40"], 4),
            "found_64px": f"{big_found}/{big}", "recall_64px": round(big_found / big, 4) if big else 0.0,
            "false_share": round(summary["false_share"], 4), "ms_per_image": round(seconds / len(photos) * 1000, 1),
        }
    return {"recall_side": side, **out}


def profile_request(body: bytes, model: Path | None, count: int, backend: str | None) -> str:
    """pyinstrument's call tree of `count` /v1/predict jobs as a worker runs them (decode, detect,
    classify, JSON-ready results), in this process, with the server's thread plan."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--profile needs pyinstrument: pip install pyinstrument") from None
    from emolens.runtime.devices import configure_threads
    from emolens.serving.jobs import Runner
    from emolens.serving.limits import ServerLimits
    from emolens.serving.server import serving_recognizer
    from emolens.serving.uploads import Upload

    limits = ServerLimits()
    configure_threads(workers=limits.workers)
    runner = Runner(serving_recognizer(model, backend=backend, limits=limits), limits)
    runner.predict_image(Upload(body, "warm-up"))
    profiler = Profiler(interval=0.0005)
    with profiler:
        for i in range(count):
            runner.predict_image(Upload(body, f"request {i}"))
    return profiler.output_text(unicode=True, color=False, show_all=False)


def random_model(folder: Path) -> Path:
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch="simple_cnn", name="random-simple-cnn", version="0")), folder / "random.safetensors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path | None, workers: int, max_queue: int, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "emolens", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--max-queue", str(max_queue), "--log-level", "warning"]
    if model is not None:
        cmd += ["--model", str(model)]
    cmd += list(extra)
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before answering; command: {' '.join(cmd)}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not answer /healthz within 60 s")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process so far: this one, or the server by its pid."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(
    url: str, body: bytes, content_type: str, requests: int, concurrency: int, max_seconds: float, warmup: int, server_pid: int | None = None,
) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: Counter = Counter()
    server_ms: dict[str, list[float]] = {"queue_ms": [], "lock_ms": [], "predict_ms": [], "total_ms": []}
    faces: Counter = Counter()
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": content_type}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        for _ in range(warmup):  # first calls pay for lazy initialisation; not measured
            (await client.post("/v1/predict", content=body, headers=headers)).raise_for_status()
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/predict", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    out = r.json()
                    faces[len(out["faces"])] += 1
                    for key in server_ms:
                        if out["timings"].get(key) is not None:
                            server_ms[key].append(out["timings"][key])
                    for key, ms in (out["timings"].get("pipeline_ms") or {}).items():  # the recognizer's own split
                        server_ms.setdefault(f"pipeline_{key}_ms", []).append(ms)

        start = time.perf_counter()
        cpu0 = (cpu_seconds(), cpu_seconds(server_pid) if server_pid else None)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        # Where the machine's CPU went, per answered request: the server, and these clients.
        done = max(1, sum(statuses.values()))
        cpu_ms = {"client": round((cpu_seconds() - cpu0[0]) / done * 1000, 1)}
        if server_pid:
            cpu_ms["server"] = round((cpu_seconds(server_pid) - cpu0[1]) / done * 1000, 1)
        health = (await client.get("/healthz")).json()
        model = (await client.get("/v1/model")).json()

    ok = statuses.get(200, 0)
    lat_ms = np.asarray(latencies) * 1000
    return {
        "url": url, "requests": sum(statuses.values()), "ok": ok, "errors": sum(statuses.values()) - ok,
        "statuses": {str(k): v for k, v in statuses.items()}, "concurrency": concurrency,
        "seconds": round(elapsed, 2), "requests_per_s": round(ok / elapsed, 2) if elapsed else 0.0,
        "latency_ms": {q: round(float(np.percentile(lat_ms, p)), 1) for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
        if len(lat_ms) else {},
        "server_median_ms": {k: round(statistics.median(v), 1) for k, v in server_ms.items() if v},
        "cpu_ms_per_request": cpu_ms, "load_average": [round(x, 2) for x in os.getloadavg()],
        "faces_per_response": {str(k): v for k, v in sorted(faces.items())},
        "model": {k: model.get(k) for k in ("name", "version", "arch", "backend", "detector")},
        "server_pool": health["pool"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="target a running server (loopback only), e.g. http://127.0.0.1:8000")
    p.add_argument("--model", type=Path, help="model for the server this script starts (default: shipped, else random)")
    p.add_argument("--workers", type=int, default=2, help="inference threads of the started server")
    p.add_argument("--max-queue", type=int, default=32, help="queue of the started server; >= concurrency for zero 503s")
    p.add_argument("--backend", help="--backend of the started server (default: emolens serve's)")
    p.add_argument("--detector", help="--detector of the started server (default: emolens serve's)")
    p.add_argument("--min-face-size", type=int, help="--min-face-size of the started server (default: emolens serve's)")
    p.add_argument("--image", type=Path, help="image to send (default: scikit-image's astronaut as JPEG)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop issuing requests after this long")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the report here (refuses to overwrite)")
    p.add_argument("--profile", type=int, metavar="N", help="instead of a load test: profile N requests' work in this process (pyinstrument)")
    p.add_argument("--recall", type=Path, metavar="GT_FILE", help="instead of a load test: recall on WIDER FACE (its *_bbx_gt.txt)")
    p.add_argument("--recall-images", type=Path, help="WIDER FACE images: the zip or the WIDER_val/images folder")
    p.add_argument("--recall-side", type=int, default=640, help="photos shrunk to this longer side first (default 640)")
    return p


def _target(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen | None, str]:
    """The server to load: the running one `--url` names (loopback only), or one started here (and its process)."""
    if args.url:
        host = urlsplit(args.url).hostname or ""
        if not is_loopback(host):
            raise SystemExit(f"--url host {host!r} is not a loopback address; this benchmark only targets this machine")
        return None, args.url.rstrip("/")
    model = args.model
    if model is None:
        from emolens.models import default_model_path

        model = None if default_model_path().exists() else random_model(tmp)
    extra = [arg for flag, value in (
        ("--backend", args.backend), ("--detector", args.detector), ("--min-face-size", args.min_face_size)) if value for arg in (flag, str(value))]
    return start_server(model, args.workers, args.max_queue, extra)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.json is not None and args.json.exists():
        raise SystemExit(f"{args.json} exists; choose another --json path")
    if args.profile:
        print(profile_request(args.image.read_bytes() if args.image else default_image(), args.model, args.profile, args.backend))
        return 0
    if args.recall is not None:
        if args.recall_images is None:
            raise SystemExit("--recall needs --recall-images (the WIDER FACE zip or its images folder)")
        text = json.dumps(measure_recall(args.recall, args.recall_images, args.recall_side, args.detector, args.min_face_size), indent=2)
        print(text)
        if args.json is not None:
            args.json.write_text(text + "\n")
        return 0
    body = args.image.read_bytes() if args.image else default_image()
    content_type = "image/png" if body[:4] == b"\x89PNG" else "image/jpeg"
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="emolens-load-")
    try:
        proc, url = _target(args, Path(tmp.name))
        report = asyncio.run(run_load(
            url, body, content_type, args.requests, args.concurrency, args.max_seconds, args.warmup, proc.pid if proc else None,
        ))
    finally:
        if proc is not None:
            _stop(proc)
        tmp.cleanup()
    report["image_bytes"] = len(body)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    lat = report["latency_ms"]
    print(
        f"\n| {report['requests']} requests | {report['concurrency']} clients | {report['errors']} errors | "
        f"p50 {lat.get('p50')} ms | p99 {lat.get('p99')} ms | {report['requests_per_s']} req/s |"
    )
    return 1 if report["errors"] or report["requests"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
