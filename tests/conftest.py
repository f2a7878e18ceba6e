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
