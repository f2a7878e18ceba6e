"""Data-parallel training under torchrun: detect, initialise, reduce, tear down.

`torchrun --nproc_per_node=N -m emolens train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; when
WORLD_SIZE > 1, `setup()` joins the process group (NCCL on GPUs, gloo on CPU) and each
process takes the GPU of its LOCAL_RANK. Without those variables everything here is a no-op,
so single-process training runs the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from emolens.errors import ConfigError


def log_main(info: DistInfo, msg: str) -> None:
    """Print `msg` on rank 0 only, above any progress bar."""
    if info.is_main:
        import sys

        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (single process if absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc}); are they set by torchrun?") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistInfo(rank, world, local)


def setup(info: DistInfo, device: torch.device) -> None:
    """Join the process group, once; NCCL for CUDA devices, gloo otherwise."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, device_id=device if backend == "nccl" else None)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes (in place); identity when not distributed."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm running stats) to every process.

    DDP syncs buffers at the start of each forward, so after the last step each process still
    holds its own last update; evaluating then would score slightly different models.
    """
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buf in model.buffers():
            dist.broadcast(buf, src)


def broadcast_str(text: str, device: torch.device, src: int = 0, max_bytes: int = 4096) -> str:
    """Rank `src`'s string on every process (e.g. the run folder that rank 0 chose)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return text
    buf = torch.zeros(max_bytes + 4, dtype=torch.uint8, device=device)
    if dist.get_rank() == src:
        raw = text.encode()
        if len(raw) > max_bytes:
            raise ConfigError(f"string of {len(raw)} bytes is longer than {max_bytes} and cannot be shared across processes")
        buf[:4] = torch.tensor(list(len(raw).to_bytes(4, "little")), dtype=torch.uint8)
        buf[4 : 4 + len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    dist.broadcast(buf, src)
    data = bytes(buf.cpu().tolist())
    n = int.from_bytes(data[:4], "little")
    return data[4 : 4 + n].decode()


def broadcast_flag(flag: bool, device: torch.device, src: int = 0) -> bool:
    """Rank `src`'s decision (e.g. "stop early") on every process."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(t, src)
    return bool(t.item())
