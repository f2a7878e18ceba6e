"""Where models run and on how many CPU threads: the one place emolens decides either.

Devices. `resolve_device("auto")` is this process's CUDA GPU when there is one (LOCAL_RANK's
under torchrun), else the CPU; training (`run.device`), evaluation and inference
(`EmotionRecognizer(device=...)`, `create_backend(device=...)`) all resolve their device here.
`resolve_amp` picks mixed precision for a device: AMP helps on CUDA (tensor cores) and on CPUs
with AMX (`cpu_has_native_bf16`); elsewhere bf16 is slower than fp32 (emulated, ~10x, or
AVX512-BF16 without AMX, 0.8-0.9x), so `auto` keeps those in fp32.

Threads. CPU thread counts are process-wide in PyTorch (`torch.set_num_threads`) and OpenCV
(`cv2.setNumThreads`), so no backend or detector sets them as a side effect of being built.
An entry point decides once, by calling `configure_threads`:

- `emolens serve` with W inference workers: `configure_threads(workers=W)`, so each worker's
  forward pass and face search get cores // W threads (intra-op parallelism on top of W
  concurrent requests oversubscribes the CPU and slows all of them), and every onnxruntime
  session is capped the same way (intra-op cores // W, inter-op 1; onnxruntime otherwise
  starts one spinning thread per core for each session);
- video and the webcam: `configure_threads(PIPELINE.stream_threads)` (one classifier thread:
  a frame holds a few faces, and two threads spinning against other work on two cores made
  batch-1 inference about 50x slower), OpenCV left at its default for the full-frame searches;
- `EmotionRecognizer(threads=N)` / `create_backend(threads=N)`: the same call, made for the
  caller (PyTorch's count is process-wide: the docstrings say so);
- nothing called: every library keeps its own default.

    >>> from emolens.runtime.devices import configure_threads
    >>> plan = configure_threads(workers=2)          # on a 2-core machine
    >>> plan.torch, plan.opencv, plan.onnx_intra, plan.onnx_inter
    (1, 1, 1, 1)
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError

log = logging.getLogger("emolens.runtime")

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | Any = "auto", local_rank: int | Any = 0, *, what: str = "device") -> Any:
    """'auto' -> this process's GPU if CUDA is available, else the CPU; 'cuda' -> GPU `local_rank`.

    `local_rank` is the process's rank on its node (torchrun's LOCAL_RANK; an object with a
    `local_rank` attribute, training's DistInfo, works too, and errors then name `run.device`).
    `what` names the setting in error messages. Returns a torch.device.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if hasattr(local_rank, "local_rank"):  # training's DistInfo: the setting is the config's run.device
        local_rank, what = local_rank.local_rank, "run.device" if what == "device" else what
    rank = int(local_rank or 0)
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what} = {name!r} is not a device; expected {DEVICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} asks for CUDA but no CUDA GPU is available; use {what}=cpu (or auto)")
        if device.index is None:
            device = torch.device("cuda", rank % torch.cuda.device_count())
    elif device.type != "cpu":
        raise ConfigError(f"{what} = {name!r} is not supported; expected {DEVICES}")
    return device


# Where a CUDA (or ROCm) driver shows itself on Linux: NVIDIA's driver, its device nodes,
# AMD's compute node, and WSL's GPU bridge.
_GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def runs_on_cpu(name: str | Any = "auto") -> bool:
    """Whether `resolve_device(name)` is the CPU, answered without importing torch when the answer
    is sure: "cpu", or "auto" on a Linux machine with no GPU driver, or on macOS (no CUDA). The
    ONNX backend runs on the CPU, so a start on such a machine never pays for importing PyTorch."""
    import sys

    if str(name) == "cpu":
        return True
    if (name is None or name == "auto") and "torch" not in sys.modules:
        if sys.platform == "darwin":
            return True
        if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _GPU_DRIVER_PATHS):
            return True
    return resolve_device(name).type == "cpu"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo); empty where they cannot be read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True when bf16 trains faster than fp32 on this CPU: AMX tiles (amx_bf16) and PyTorch's AVX-512 path.

    AVX512-BF16 alone is not enough: it converts and multiplies bf16 pairs, but the casts around
    every layer cost more than it saves. On a 2-core Xeon with it and without AMX, bf16 autocast
    trained at 0.81-0.92x fp32's rate (`python benchmarks/train_throughput.py --arch vgg_fer_small
    vgg_fer --batch-size 128 --amp off bf16 [--channels-last]`, docs/experiments.md); on the AMX
    Xeons of earlier sessions it was the faster.
    """
    import torch

    return "AVX512" in torch.backends.cpu.get_cpu_capability() and "amx_bf16" in cpu_flags()


def resolve_amp(mode: str, device: Any) -> Any:
    """The autocast dtype (a torch.dtype) for `run.amp` on `device`, or None for fp32."""
    import torch

    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type == "cpu" and not (mode == "bf16" and cpu_has_native_bf16()):
        warnings.warn(f"run.amp={mode} on a CPU without AMX trains slower than fp32 (emulated, or AVX512-BF16 alone); use run.amp=auto", stacklevel=2)
    return dtype


def resolve_channels_last(setting: bool | None, device: Any) -> bool:
    """Whether to train in channels_last (`run.channels_last`; None = auto).

    Auto: on CUDA (tensor cores), and on CPUs where PyTorch takes its AVX-512 path, where oneDNN's
    channels_last kernels trained the FER models 1.16-1.48x faster (fp32 on a 2-core Xeon,
    `python benchmarks/train_throughput.py ... [--channels-last]`; the commands are in docs/experiments.md); off on AVX2-only CPUs, where they measured 1.05-1.3x slower (9x for a tiny
    network; AMD Zen 1, torch 2.13).
    """
    if setting is not None:
        return bool(setting)
    if device.type == "cuda":
        return True
    import torch

    return device.type == "cpu" and "AVX512" in torch.backends.cpu.get_cpu_capability()


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    """The CPU threads of one process; None leaves that library's own default."""

    cores: int
    workers: int  # threads running inference side by side (the server's workers; 1 elsewhere)
    torch: int | None  # PyTorch intra-op threads, process-wide
    opencv: int | None  # OpenCV's parallel_for threads (the Haar search), process-wide
    onnx_intra: int | None  # each onnxruntime session's intra-op threads
    onnx_inter: int | None  # each onnxruntime session's inter-op threads


_plan: ThreadPlan | None = None
_plan_lock = threading.Lock()


def plan_threads(threads: int | None = None, *, workers: int = 1, cores: int | None = None) -> ThreadPlan:
    """The thread counts `configure_threads` applies, without applying them (see the module docstring).

    threads: classifier threads per worker (None: cores // workers when workers > 1, else the
    libraries' defaults). workers > 1 also caps OpenCV at the same share, since every worker
    runs its own face search.
    """
    cores = cores or cpu_cores()
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a whole number >= 1 (or None for the default), got {threads!r}")
    share = max(1, cores // workers)
    per_worker = threads if threads is not None else (share if workers > 1 else None)
    return ThreadPlan(
        cores=cores, workers=workers, torch=per_worker, opencv=share if workers > 1 else None,
        onnx_intra=per_worker, onnx_inter=1 if per_worker is not None else None,
    )


def configure_threads(threads: int | None = None, *, workers: int = 1) -> ThreadPlan:
    """Decide this process's CPU threads, once, at an entry point; returns what was set.

    Sets PyTorch's intra-op threads and OpenCV's threads (both process-wide) and records the
    onnxruntime caps that every session created afterwards uses (`session_threads`). Calling
    it again replaces the plan (tests do; a program should call it once, before it loads models).
    """
    global _plan
    plan = plan_threads(threads, workers=workers)
    with _plan_lock:
        if plan.torch is not None:
            import torch

            torch.set_num_threads(plan.torch)
        if plan.opencv is not None:
            import cv2

            cv2.setNumThreads(plan.opencv)
        _plan = plan
    log.debug("threads: %s", plan)
    return plan


def current_plan() -> ThreadPlan | None:
    """The plan `configure_threads` last applied in this process, or None."""
    return _plan


def session_threads(threads: int | None = None) -> tuple[int | None, int | None]:
    """(intra-op, inter-op) threads for a new onnxruntime session: `threads` if given (inter-op
    1), else the process's plan, else (None, None) for onnxruntime's defaults."""
    if threads is not None:
        return threads, 1
    plan = _plan
    return (plan.onnx_intra, plan.onnx_inter) if plan is not None else (None, None)
