"""Load test of the HTTP API on loopback: N requests from C concurrent clients, then p50/p99/req/s.

    python benchmarks/load.py                                  # starts its own server, 2000 x 16
    python benchmarks/load.py --model runs/exp/best.safetensors --workers 2
    python benchmarks/load.py --url http://127.0.0.1:8000      # a server you started

Without --url it starts `emolens serve` on a free loopback port in a child process (so the
clients do not share the server's interpreter), waits for /healthz, and stops it at the end.
Without --model it serves the shipped model, or, when none is installed, a randomly
initialised simple_cnn: detection, decoding and the network cost the same whatever the
weights, so the timings hold. Only loopback addresses are accepted as targets. The run is
bounded by --requests and --max-seconds; it exits 1 when any request failed.
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


def random_model(folder: Path) -> Path:
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch="simple_cnn", name="random-simple-cnn", version="0")), folder / "random.safetensors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path | None, workers: int, max_queue: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "emolens", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--max-queue", str(max_queue), "--log-level", "warning"]
    if model is not None:
        cmd += ["--model", str(model)]
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


async def run_load(url: str, body: bytes, content_type: str, requests: int, concurrency: int, max_seconds: float, warmup: int) -> dict:
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

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
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
        "faces_per_response": {str(k): v for k, v in sorted(faces.items())},
        "model": {k: model.get(k) for k in ("name", "version", "arch", "backend", "detector")},
        "server_pool": health["pool"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="target a running server (loopback only), e.g. http://127.0.0.1:8000")
    p.add_argument("--model", type=Path, help="model for the server this script starts (default: shipped, else random)")
    p.add_argument("--workers", type=int, default=2, help="inference threads of the started server")
    p.add_argument("--max-queue", type=int, default=32, help="queue of the started server; >= concurrency for zero 503s")
    p.add_argument("--image", type=Path, help="image to send (default: scikit-image's astronaut as JPEG)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop issuing requests after this long")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the report here (refuses to overwrite)")
    args = p.parse_args(argv)

    if args.json is not None and args.json.exists():
        raise SystemExit(f"{args.json} exists; choose another --json path")
    body = args.image.read_bytes() if args.image else default_image()
    content_type = "image/png" if body[:4] == b"\x89PNG" else "image/jpeg"
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="emolens-load-")
    try:
        if args.url:
            host = urlsplit(args.url).hostname or ""
            if not is_loopback(host):
                raise SystemExit(f"--url host {host!r} is not a loopback address; this benchmark only targets this machine")
            url = args.url.rstrip("/")
        else:
            model = args.model
            if model is None:
                from emolens.models import default_model_path

                model = None if default_model_path().exists() else random_model(Path(tmp.name))
            proc, url = start_server(model, args.workers, args.max_queue)
        report = asyncio.run(run_load(url, body, content_type, args.requests, args.concurrency, args.max_seconds, args.warmup))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
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
