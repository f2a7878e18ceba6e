"""`emolens.paths`: the one never-overwrite rule (NAME, else NAME-2, NAME-3, ...)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from emolens.errors import DataError
from emolens.paths import free_dir, free_stem, numbered


def test_candidates_are_name_then_name_dash_k() -> None:
    assert list(islice(numbered("run"), 4)) == ["run", "run-2", "run-3", "run-4"]


def test_free_dir_skips_folders_that_hold_something_and_creates_the_one_it_returns(tmp_path: Path) -> None:
    assert free_dir(tmp_path / "a") == tmp_path / "a" and (tmp_path / "a").is_dir()
    assert free_dir(tmp_path / "a") == tmp_path / "a"  # empty: nothing there to overwrite
    (tmp_path / "a" / "mine.txt").write_text("keep me")
    assert free_dir(tmp_path / "a") == tmp_path / "a-2"
    assert (tmp_path / "a" / "mine.txt").read_text() == "keep me"
    # With `holds`, only those names count: a folder of other files is still free for them.
    assert free_dir(tmp_path / "a", holds=("report.json",)) == tmp_path / "a"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="afile: is a file"):
        free_dir(tmp_path / "afile")


def test_free_stem_counts_every_suffix_and_what_this_run_took(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("x")
    assert free_stem(tmp_path, "v", [".mp4", ".csv"]) == "v-2"
    assert free_stem(tmp_path, "v", [".mp4", ".csv"], overwrite=True) == "v"
    taken: set[Path] = set()
    assert [free_stem(tmp_path, "f", [".jpg"], overwrite=True, taken=taken) for _ in range(2)] == ["f", "f-2"]
