"""Which training rows each process sees in an epoch, for every imbalance strategy.

Each sampler draws the epoch's global order from (seed, epoch) alone, so every process
computes the same order without talking to the others, then keeps every `num_replicas`-th
position starting at its `rank`: the shards are disjoint and together cover the epoch, as in
`torch.utils.data.DistributedSampler` (which the plain strategy uses directly). A run resumed
at epoch k therefore sees exactly the rows it would have seen, with no sampler state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from emolens.errors import ConfigError


class _Indices(torch.utils.data.Dataset):
    """A stand-in dataset of n rows for DistributedSampler, which only needs len()."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Oversampling or undersampling, split disjointly across processes, reshuffled each epoch.

    oversample: draws len(labels) rows with replacement, each row weighted 1 / count(its class),
        so every class is drawn equally often in expectation (WeightedRandomSampler's scheme).
    undersample: keeps min(count) rows of every class, drawn without replacement, fresh each epoch.
    """

    def __init__(self, labels: np.ndarray, mode: str, *, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        if mode not in ("oversample", "undersample"):
            raise ConfigError(f"BalancedSampler mode must be oversample or undersample, got {mode!r}")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is outside [0, {num_replicas})")
        self.labels = np.asarray(labels)
        self.mode, self.num_replicas, self.rank, self.seed = mode, num_replicas, rank, seed
        self.epoch = 0
        counts = np.bincount(self.labels)
        self._present = np.flatnonzero(counts)
        self._by_class = [np.flatnonzero(self.labels == c) for c in self._present]
        self._total = len(self.labels) if mode == "oversample" else int(counts[self._present].min()) * len(self._present)
        self.num_samples = -(-self._total // num_replicas)  # ceil: every process gets the same count

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_order(self) -> np.ndarray:
        """The whole epoch's rows, before sharding; the same on every process."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.mode == "oversample":
            counts = np.bincount(self.labels)
            p = 1.0 / counts[self.labels]
            order = rng.choice(len(self.labels), size=self._total, replace=True, p=p / p.sum())
        else:
            m = self._total // len(self._present)
            order = rng.permutation(np.concatenate([rng.choice(rows, size=m, replace=False) for rows in self._by_class]))
        # Pad by wrapping so the count divides evenly, as DistributedSampler does.
        pad = self.num_samples * self.num_replicas - len(order)
        return np.concatenate([order, order[:pad]]) if pad else order

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_order()[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def make_sampler(labels: np.ndarray, strategy: str, *, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> torch.utils.data.Sampler[int]:
    """The training sampler for an imbalance strategy; loss-side strategies just shuffle."""
    if strategy in ("oversample", "undersample"):
        return BalancedSampler(labels, strategy, num_replicas=num_replicas, rank=rank, seed=seed)
    return DistributedSampler(_Indices(len(labels)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)


def epoch_indices(sampler: torch.utils.data.Sampler[int], epoch: int) -> np.ndarray:
    """This process's rows for `epoch`, as an int64 array."""
    sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    return np.fromiter(iter(sampler), dtype=np.int64)
