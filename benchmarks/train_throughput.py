"""Does the data pipeline keep up with the model? Augmentation images/s vs train-step images/s.

    python benchmarks/train_throughput.py                          # simple_cnn, resnet_fer_small, vgg_fer_small
    python benchmarks/train_throughput.py --arch vgg_fer --batch-size 128 --threads 1 2
    python benchmarks/train_throughput.py --device cuda
    python benchmarks/train_throughput.py --amp off bf16            # fp32 against bf16 autocast (what run.amp=auto picks)

The augmentation is the training transform of `emolens.transforms` on uint8 batches (B, S, S),
on the same device as the model, exactly as `emolens train` runs it. The train step is a
forward, a cross-entropy backward and an AdamW step on a fixed normalised batch. When the
augmentation is much faster than the step, the model never waits for data. Prints one row
per (threads, model) and the machine's load average, since shared machines vary.

Data-parallel throughput comes from `emolens train` itself (the `images_per_s` column of
history.csv); docs/distributed.md has the commands.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch


def _rate(fn: Callable[[], object], images_per_call: int, warmup: int, seconds: float, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return n * images_per_call / elapsed


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: str) -> Callable[[], None]:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step() -> None:
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):  # as the trainer's step
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    from emolens.models import create_model
    from emolens.preprocessing import PreprocessConfig
    from emolens.training.config import AugConfig
    from emolens.transforms import create_transform

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["simple_cnn", "resnet_fer_small", "vgg_fer_small"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    p.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", action="store_true", help="run the model in channels_last (default on CUDA)")
    p.add_argument("--amp", nargs="+", choices=["off", "bf16", "fp16"], default=["off"],
                   help="autocast dtypes to time the train step under, side by side (off = fp32)")
    args = p.parse_args()

    device = torch.device(args.device)
    channels_last = args.channels_last or device.type == "cuda"
    cfg = PreprocessConfig()
    faces = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (args.batch_size, cfg.image_size, cfg.image_size), dtype=np.uint8)).to(device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f}; "
          f"torch {torch.__version__}, device {device}, batch {args.batch_size}, channels_last {channels_last}")
    from emolens.runtime.devices import cpu_flags

    if device.type == "cpu":
        print(f"# bf16 hardware: {', '.join(f for f in ('avx512_bf16', 'amx_bf16') if f in cpu_flags()) or 'none'}")
    print(f"{'threads':>7} {'model':<18} {'amp':>5} {'augment img/s':>14} {'train img/s':>12} {'augment share':>14}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        transform = create_transform(cfg, AugConfig(), is_training=True, seed=0)
        aug_rate = _rate(partial(transform, faces), args.batch_size, 3, args.seconds, device)
        for arch in args.arch:
            model = create_model(arch, num_classes=7).to(device)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            model = model.to(memory_format=fmt).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = transform(faces).contiguous(memory_format=fmt)
            y = torch.randint(0, 7, (args.batch_size,), device=device)

            for amp in args.amp:
                train_rate = _rate(_train_step(model, opt, x, y, amp), args.batch_size, 2, args.seconds, device)
                # Share of each training step spent augmenting its batch.
                share = (1 / aug_rate) / (1 / aug_rate + 1 / train_rate)
                print(f"{threads:>7} {arch:<18} {amp:>5} {aug_rate:>14.0f} {train_rate:>12.0f} {share:>13.1%}")


if __name__ == "__main__":
    main()
