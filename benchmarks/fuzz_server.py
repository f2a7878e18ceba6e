"""Abuse probes against `emolens serve` on loopback: memory, slow clients, floods, foreign hosts.

    python benchmarks/fuzz_server.py                       # every probe, on a server it starts
    python benchmarks/fuzz_server.py --probes crops,slow --json fuzz.json
    python benchmarks/fuzz_server.py --serve-args="--read-timeout 5"

It starts `emolens serve` on a free 127.0.0.1 port in a child process (a randomly initialised
simple_cnn unless --model is given), runs each probe, and reads the server's memory from
/proc/PID/status (VmRSS now, VmHWM the peak). Every loop is bounded by a count and a time limit,
only 127.0.0.1 is contacted, and the server is stopped at the end. Probes:

- crops:   N huge PNG crops (7000x7000, solid grey: a few kB each) in one /v1/predict/crops request
- photo:   one 7000x7000 JPEG (49 MP) to /v1/predict: status, time, memory
- flood:   one WebSocket that sends frames and never reads a reply
- slow:    C raw-socket clients trickling a request at 1 byte/s; how long the server holds them
- hosts:   requests with a foreign Host or Origin, and the security headers
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import free_port, random_model


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def start_server(model: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "emolens", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(model),
           "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not answer /healthz within 60 s")


def encode(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def probe_crops(port: int, pid: int, n: int = 8, side: int = 7000) -> dict:
    import httpx
    from PIL import Image

    crop = encode(Image.new("RGB", (side, side), (128, 128, 128)), "PNG")
    before = rss_mb(pid)
    t0 = time.perf_counter()
    files = [("files", (f"huge{i}.png", crop, "image/png")) for i in range(n)]
    r = httpx.post(f"http://127.0.0.1:{port}/v1/predict/crops", files=files, timeout=300)
    took = time.perf_counter() - t0
    after = rss_mb(pid)
    errors = [c.get("error") for c in r.json().get("crops", [])] if r.headers.get("content-type", "").startswith("application/json") else []
    return {"crops": n, "side": side, "upload_bytes": n * len(crop), "status": r.status_code, "seconds": round(took, 2),
            "rss_before_mb": before["VmRSS"], "rss_after_mb": after["VmRSS"], "peak_mb": after["VmHWM"],
            "detail": (r.json().get("detail") if r.status_code != 200 else None), "crop_errors": sum(e is not None for e in errors)}


def probe_photo(port: int, pid: int, side: int = 7000) -> dict:
    import httpx
    import numpy as np
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((side // 2, side // 2))
    canvas = Image.fromarray(np.full((side, side, 3), 100, np.uint8))
    canvas.paste(face, (side // 4, side // 4))
    photo = encode(canvas, "JPEG", quality=85)
    before = rss_mb(pid)
    t0 = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", content=photo, headers={"content-type": "image/jpeg"}, timeout=300)
    took = time.perf_counter() - t0
    after = rss_mb(pid)
    body = r.json()
    return {"side": side, "upload_bytes": len(photo), "status": r.status_code, "seconds": round(took, 2),
            "faces": [f["box"] for f in body.get("faces", [])], "timings": body.get("timings"),
            "rss_before_mb": before["VmRSS"], "rss_after_mb": after["VmRSS"], "peak_mb": after["VmHWM"]}


def ws_connect(port: int, origin: str | None = None) -> tuple[socket.socket, bytes]:
    """A raw WebSocket handshake; returns the socket and the server's answer head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if origin:
        head += f"Origin: {origin}\r\n"
    s.sendall((head + "\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    return s, answer


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") if n else b""
    return head + mask + masked


def probe_flood(port: int, pid: int, frames: int = 200, max_seconds: float = 60.0) -> dict:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    frame = encode(Image.fromarray(rng.integers(0, 256, (1400, 1400, 3), dtype=np.uint8)), "PNG")  # ~5.9 MB, 2 MP
    payload = ws_frame(frame)
    before = rss_mb(pid)
    s, answer = ws_connect(port)
    if b" 101 " not in answer.split(b"\r\n", 1)[0]:
        return {"error": "handshake refused", "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace")}
    s.settimeout(2.0)
    sent, closed_by_server, t0, peak = 0, False, time.perf_counter(), before["VmRSS"]
    while sent < frames and time.perf_counter() - t0 < max_seconds:
        try:
            s.sendall(payload)  # never recv(): the replies pile up on the server's side
            sent += 1
        except (TimeoutError, OSError):
            closed_by_server = True  # buffers full (the server stopped reading) or connection closed
            break
        peak = max(peak, rss_mb(pid)["VmRSS"])
    during = rss_mb(pid)
    took = time.perf_counter() - t0
    close_code = None
    try:  # what the server said last, if it closed with a code
        s.settimeout(2.0)
        tail = b""
        while len(tail) < 16_000_000:
            chunk = s.recv(65536)
            if not chunk:
                break
            tail += chunk
        i = tail.rfind(b"\x88")
        if i >= 0 and len(tail) >= i + 4:
            close_code = struct.unpack(">H", tail[i + 2 : i + 4])[0]
    except (TimeoutError, OSError):
        pass
    s.close()
    time.sleep(3.0)
    after = rss_mb(pid)
    return {"frame_bytes": len(frame), "frames_sent": sent, "seconds": round(took, 1), "stopped_by_server": closed_by_server,
            "close_code": close_code, "rss_before_mb": before["VmRSS"], "rss_peak_during_mb": max(peak, during["VmRSS"]),
            "rss_3s_after_close_mb": after["VmRSS"], "peak_mb": after["VmHWM"]}


def probe_slow(port: int, clients: int = 50, max_seconds: float = 60.0) -> dict:
    """Each client opens a connection and sends a POST one byte per second; when is it dropped?"""
    request = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
               f"Content-Length: 100000\r\n\r\n").encode() + b"\xff" * 100_000
    held: list[float | None] = [None] * clients
    t0 = time.monotonic()

    def one(i: int) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            held[i] = 0.0
            return
        s.settimeout(0.0)
        start = time.monotonic()
        for pos in range(len(request)):
            if time.monotonic() - t0 > max_seconds:
                break
            try:
                s.send(request[pos : pos + 1])
                data = s.recv(4096)
                if data == b"" or data:
                    held[i] = time.monotonic() - start  # answered (408/503) or closed
                    break
            except BlockingIOError:
                pass
            except OSError:
                held[i] = time.monotonic() - start
                break
            time.sleep(1.0)
        s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 10)
    dropped = [h for h in held if h is not None]
    return {"clients": clients, "bytes_per_s": 1, "limit_s": max_seconds, "dropped": len(dropped),
            "still_held_at_limit": clients - len(dropped), "held_s_max": round(max(dropped), 1) if dropped else None,
            "held_s_min": round(min(dropped), 1) if dropped else None}


def probe_hosts(port: int) -> dict:
    import httpx

    url = f"http://127.0.0.1:{port}"
    out = {}
    out["host_evil"] = httpx.get(url + "/healthz", headers={"host": "evil.example"}).status_code
    out["host_localhost"] = httpx.get(url + "/healthz", headers={"host": f"localhost:{port}"}).status_code
    out["origin_evil_post"] = httpx.post(url + "/v1/predict", content=b"x", headers={"origin": "http://evil.example", "content-type": "image/jpeg"}).status_code
    out["origin_same_post"] = httpx.post(url + "/v1/predict", content=b"x", headers={"origin": url, "content-type": "image/jpeg"}).status_code
    s, answer = ws_connect(port, origin="http://evil.example")
    out["ws_origin_evil"] = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    s.close()
    s, answer = ws_connect(port, origin=url)
    out["ws_origin_same"] = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    s.close()
    headers = httpx.get(url + "/healthz").headers
    out["headers"] = {k: headers.get(k) for k in ("x-content-type-options", "x-frame-options", "content-security-policy")}
    return out


PROBES = ("crops", "photo", "flood", "slow", "hosts")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="model to serve (default: a random simple_cnn)")
    p.add_argument("--probes", default=",".join(PROBES), help=f"comma-separated subset of {', '.join(PROBES)}")
    p.add_argument("--serve-args", default="", help="extra options for emolens serve, e.g. '--read-timeout 5'")
    p.add_argument("--crops", type=int, default=8, help="huge crops in the crops probe")
    p.add_argument("--frames", type=int, default=200, help="most frames the flood probe sends")
    p.add_argument("--clients", type=int, default=50, help="slow clients")
    p.add_argument("--max-seconds", type=float, default=60.0, help="time limit of the flood and slow probes")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    chosen = [x.strip() for x in args.probes.split(",") if x.strip()]
    unknown = set(chosen) - set(PROBES)
    if unknown:
        raise SystemExit(f"unknown probes {sorted(unknown)}; choose from {', '.join(PROBES)}")
    tmp = tempfile.TemporaryDirectory(prefix="emolens-fuzz-")
    model = args.model or random_model(Path(tmp.name))
    proc, port = start_server(model, shlex.split(args.serve_args))
    report: dict = {"serve_args": args.serve_args, "rss_idle_mb": rss_mb(proc.pid)}
    try:
        for name in chosen:
            if name == "crops":
                report[name] = probe_crops(port, proc.pid, args.crops)
            elif name == "photo":
                report[name] = probe_photo(port, proc.pid)
            elif name == "flood":
                report[name] = probe_flood(port, proc.pid, args.frames, args.max_seconds)
            elif name == "slow":
                report[name] = probe_slow(port, args.clients, args.max_seconds)
            else:
                report[name] = probe_hosts(port)
            print(name, json.dumps(report[name]), flush=True)
            report["server_alive"] = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmp.cleanup()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
