"""Dataset statistics on a hand-made set with known duplicates, and `emolens data stats`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import emolens.data
from emolens.cli import main
from emolens.data import SPLITS, FaceDataset
from emolens.data.stats import dataset_stats, duplicate_mask
from emolens.errors import DataError
from emolens.labels import EMOTIONS

# (pixel pattern, label, split). Same letter = same pixels.
ROWS = [
    ("A", "happy", "train"), ("A", "happy", "train"), ("B", "sad", "train"), ("C", "angry", "train"), ("D", "fear", "train"),
    ("A", "happy", "val"), ("E", "sad", "val"), ("E", "sad", "val"), ("F", "neutral", "val"),
    ("B", "angry", "test"), ("C", "angry", "test"), ("G", "surprise", "test"), ("G", "surprise", "test"), ("F", "neutral", "test"),
]


def pattern(letter: str) -> np.ndarray:
    rng = np.random.default_rng(ord(letter))
    return rng.integers(0, 256, (8, 8), dtype=np.uint8)


@pytest.fixture
def hand_made() -> FaceDataset:
    return FaceDataset(
        images=np.stack([pattern(p) for p, _, _ in ROWS]),
        labels=np.array([EMOTIONS.index(lab) for _, lab, _ in ROWS]),
        split=np.array([SPLITS.index(s) for _, _, s in ROWS], np.int8),
        names=np.array([f"row {i}" for i in range(len(ROWS))]),
        source="hand-made",
    )


def test_counts_table_and_markdown(hand_made):
    st = dataset_stats(hand_made)
    df = st.table()
    assert list(df.columns) == ["train", "val", "test", "total"]
    assert list(df.index) == [*EMOTIONS, "total"]
    assert df.loc["total", "train"] == 5 and df.loc["total", "val"] == 4 and df.loc["total", "test"] == 5
    assert df.loc["total", "total"] == 14
    assert df.loc["angry", "test"] == 2 and df.loc["angry", "total"] == 3 and df.loc["disgust", "total"] == 0
    md = st.to_markdown().splitlines()
    assert md[0] == "| class | train | val | test | total |"
    assert "| angry | 1 | 0 | 2 | 3 |" in md and md[-1] == "| total | 5 | 4 | 5 | 14 |"


def test_duplicate_numbers(hand_made):
    d = dataset_stats(hand_made).duplicates
    assert d["images"] == 14 and d["distinct_images"] == 7
    assert d["groups"] == 6 and d["images_in_groups"] == 13  # every letter but D repeats
    assert d["within"] == {"train": {"images": 2, "groups": 1}, "val": {"images": 2, "groups": 1}, "test": {"images": 2, "groups": 1}}
    assert d["across"]["train&val"] == {"groups": 1, "train": 2, "val": 1}
    assert d["across"]["train&test"] == {"groups": 2, "train": 2, "test": 2}
    assert d["across"]["val&test"] == {"groups": 1, "val": 1, "test": 1}
    assert d["conflicting_label_groups"] == 1 and d["conflicting_label_images"] == 2  # B: sad in train, angry in test


def test_duplicate_mask(hand_made):
    assert duplicate_mask(hand_made).tolist() == [True, True, False, False, False]  # test rows B C G G F vs train
    assert duplicate_mask(hand_made, "test", "test").tolist() == [False, False, True, True, False]
    assert duplicate_mask(hand_made, "val", "train").tolist() == [True, False, False, False]
    assert duplicate_mask(hand_made, "test", "val").tolist() == [False, False, False, False, True]
    with pytest.raises(DataError, match="unknown split 'dev'"):
        duplicate_mask(hand_made, "dev")


def test_json_plot_and_save_never_overwrites(hand_made, tmp_path):
    st = dataset_stats(hand_made)
    summary = json.loads(st.to_json())
    assert summary["totals"] == {"train": 5, "val": 4, "test": 5} and summary["images"] == 14
    assert summary["counts"]["test"]["surprise"] == 2
    first = st.save(tmp_path / "out")
    assert [p.name for p in first.values()] == ["stats.md", "stats.json", "stats.png"]
    with Image.open(first["plot"]) as im:
        assert im.format == "PNG" and im.width > 300
    before = first["json"].read_bytes()
    second = st.save(tmp_path / "out")
    assert [p.name for p in second.values()] == ["stats-1.md", "stats-1.json", "stats-1.png"]
    assert first["json"].read_bytes() == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        st.save(tmp_path / "afile")


def test_stats_of_a_dataset_with_one_split(hand_made):
    st = dataset_stats(hand_made.subset("val"))
    assert st.splits == ("val",) and list(st.table().columns) == ["val", "total"]
    assert st.duplicates["across"] == {}


def _tiny_folder(root):
    for k, cls in enumerate(["happy"] * 6 + ["sad"] * 6 + ["contempt"] * 2):
        path = root / cls / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pattern(chr(65 + k % 10))).resize((20, 20)).save(path)
    return root


def test_cli_prints_table_and_writes_files(tmp_path, capsys):
    root = _tiny_folder(tmp_path / "faces")
    out = tmp_path / "stats"
    assert main(["data", "stats", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped 2 items" in printed and "happy" in printed and "exact-duplicate faces" in printed
    assert f"json: {out / 'stats.json'}" in printed and (out / "stats.png").is_file()
    table_line = next(line for line in printed.splitlines() if line.startswith("total"))
    assert table_line.split()[-1] == "12"
    assert main(["data", "stats", str(root), "--out", str(out)]) == 0
    assert (out / "stats-1.json").is_file()


def test_cli_hands_arguments_to_the_api(tmp_path, monkeypatch, hand_made):
    seen = {}

    def fake_load(path, **kwargs):
        seen.update(path=path, **kwargs)
        return hand_made

    monkeypatch.setattr(emolens.data, "load_dataset", fake_load)
    code = main(["data", "stats", "some.zip", "--out", str(tmp_path / "o"), "--label-map", "joyful=happy", "--label-map", "contempt=", "--no-cache"])
    assert code == 0
    assert str(seen.pop("path")) == "some.zip"
    assert seen == {"label_map": {"joyful": "happy", "contempt": None}, "ferplus": None, "cache": False}


def test_cli_reports_errors(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "missing.zip"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "emolens: error:" in err and "no such file or folder" in err
    assert main(["data", "stats", str(tmp_path), "--label-map", "happy"]) == 1
    assert "expected FOLDER=EMOTION" in capsys.readouterr().err
