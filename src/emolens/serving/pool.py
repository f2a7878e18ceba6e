"""A bounded inference pool: `workers` threads run jobs, `max_queue` more may wait, the rest are refused.

The model is loaded once and shared by the threads (PyTorch and OpenCV release the GIL while
they compute). Refusing at admission, instead of queueing without end, keeps latency bounded
under overload and lets clients back off on `Retry-After`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from emolens.errors import ConfigError

T = TypeVar("T")


class Overloaded(Exception):
    """Every worker is busy and the queue is full."""

    def __init__(self, in_flight: int, capacity: int, retry_after: int):
        self.in_flight, self.capacity, self.retry_after = in_flight, capacity, retry_after
        super().__init__(
            f"server busy: {in_flight} requests running or queued, capacity {capacity}; retry in {retry_after} s"
        )


class InferencePool:
    """Run blocking jobs on `workers` threads with at most `max_queue` jobs waiting.

    `await pool.run(fn, *args)` returns `(result, wait_s)` where wait_s is the time the job spent
    queued, or raises `Overloaded` at once when `workers + max_queue` jobs are already admitted.
    """

    def __init__(self, workers: int, max_queue: int):
        if workers < 1 or max_queue < 0:
            raise ConfigError(f"pool needs workers >= 1 and max_queue >= 0, got {workers} and {max_queue}")
        self.workers = workers
        self.max_queue = max_queue
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._admitted = 0  # running + queued; decremented when the job really ends, not when its caller gives up
        self._running = 0
        self._service_s = 0.05  # running mean of job time, for Retry-After
        self.completed = 0
        self.rejected = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue

    def stats(self) -> dict[str, int]:
        with self._lock:
            running, admitted = self._running, self._admitted
        return {"workers": self.workers, "max_queue": self.max_queue, "running": running,
                "queued": admitted - running, "completed": self.completed, "rejected": self.rejected}

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="emolens-infer")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _retry_after(self, admitted: int) -> int:
        # Time for the jobs ahead to drain through the workers, at least one second.
        return int(min(60, max(1, math.ceil(self._service_s * (admitted / self.workers + 1)))))

    async def run(self, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
        self.start()
        assert self._executor is not None
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                raise Overloaded(self._admitted, self.capacity, self._retry_after(self._admitted))
            self._admitted += 1
        submitted = time.perf_counter()
        started: list[float] = []

        def job() -> T:
            t0 = time.perf_counter()
            started.append(t0)
            with self._lock:
                self._running += 1
            try:
                return fn(*args)
            finally:
                took = time.perf_counter() - t0
                with self._lock:
                    self._running -= 1
                    self._service_s = 0.9 * self._service_s + 0.1 * took

        def done(_: Future) -> None:
            with self._lock:
                self._admitted -= 1
                self.completed += 1

        try:
            future = self._executor.submit(job)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        future.add_done_callback(done)
        result = await asyncio.wrap_future(future)
        return result, (started[0] - submitted) if started else 0.0
