"""Device and mixed-precision choice.

AMP helps on CUDA (tensor cores) and on CPUs with native bf16 (AVX512-BF16 or AMX). On other
CPUs bf16 is emulated and ~10x slower than fp32, so `auto` keeps them in fp32.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from emolens.errors import ConfigError
from emolens.training.distributed import DistInfo


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """'auto' -> this process's GPU (LOCAL_RANK under torchrun) if CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"run.device = {name!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("run.device asks for CUDA but no CUDA GPU is available; use run.device=cpu (or auto)")
        if device.index is None:
            device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
    elif device.type != "cpu":
        raise ConfigError(f"run.device = {name!r} is not supported; expected auto, cpu, cuda or cuda:N")
    return device


def cpu_has_native_bf16() -> bool:
    """True when the CPU runs bf16 in hardware: AVX-512 build path plus avx512_bf16 or amx_bf16 flags."""
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, so stay safe in fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `run.amp`, or None for fp32."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type == "cpu" and not (mode == "bf16" and cpu_has_native_bf16()):
        warnings.warn(f"run.amp={mode} on a CPU without native support is emulated and much slower than fp32; use run.amp=auto", stacklevel=2)
    return dtype
