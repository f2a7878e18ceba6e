"""Shared fixtures. Tests needing the real FER-2013 archive skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FER_ARCHIVE = Path(os.environ.get("EMOLENS_FER2013", Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "fer2013" / "archive.zip"))


@pytest.fixture(scope="session")
def fer_archive() -> Path:
    if not FER_ARCHIVE.exists():
        pytest.skip(f"FER-2013 archive not found at {FER_ARCHIVE}")
    return FER_ARCHIVE.resolve()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Decoded-dataset caches go to a per-session temp folder, never the user's cache.
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "emolens-cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module: on a shared 2-core machine, 2 OpenMP threads spin
    against other jobs, and 1 thread measured up to 10x faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
