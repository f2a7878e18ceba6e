"""`serve`: load the model once and run the app with uvicorn (what `emolens serve` calls)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from emolens.errors import ConfigError
from emolens.serving.limits import ServerLimits

log = logging.getLogger("emolens.serving")
_DEFAULTS = ServerLimits()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    model: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = _DEFAULTS.workers,
    max_queue: int = _DEFAULTS.max_queue,
    max_upload_bytes: int = _DEFAULTS.max_upload_bytes,
    max_pixels: int = _DEFAULTS.max_pixels,
    max_batch: int = _DEFAULTS.max_batch,
    detector: str = "haar",
    backend: str = "torch",
    log_level: str = "info",
) -> None:
    """Serve `model` (a .safetensors file, a run folder, or None for the default) until Ctrl-C.

    One process, one model in memory, `workers` inference threads. Binding anything other than
    a loopback address exposes an unauthenticated API to the network, so it is logged loudly.
    """
    import uvicorn

    from emolens.pipeline import EmotionRecognizer
    from emolens.serving.app import create_app

    if not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    limits = ServerLimits(max_upload_bytes, max_pixels, workers, max_queue, max_batch)  # fail before loading the model
    _share_cores(limits.workers)
    recognizer = EmotionRecognizer(model=model, detector=detector, backend=backend)
    app = create_app(recognizer, **limits.to_dict())
    if not is_loopback(host):
        log.warning("emolens serve: listening on %s, reachable from other machines; the API has no authentication", host)
    # A WebSocket frame is an upload too: let slightly larger messages reach the handler, which
    # answers them 413 politely; uvicorn closes the connection on anything bigger.
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=limits.max_upload_bytes + 65536, timeout_graceful_shutdown=5)


def _share_cores(workers: int) -> None:
    # Each worker thread runs its own forward pass; letting each also use every core for
    # intra-op parallelism oversubscribes the CPU and slows all of them.
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // workers))
