"""Dataset readers on small generated files: Kaggle zip and folders, fer2013.csv, FER+, generic
folder-per-class datasets, bad input, splits and the decoded-array cache."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolens.data import SPLITS, DataWarning, FaceDataset, load_dataset
from emolens.data.cache import cache_dir
from emolens.data.loading import assign_splits
from emolens.data.readers import ZipReader
from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS, FER2013_CSV_ORDER
from emolens.preprocessing import PreprocessConfig, load_image, prepare_face

S = PreprocessConfig().image_size
# Per class: (train, val, test) images in the small Kaggle-style set.
KAGGLE_COUNTS = {"angry": (3, 1, 1), "disgust": (1, 1, 0), "fear": (2, 0, 1), "happy": (4, 2, 2), "neutral": (2, 1, 1), "sad": (2, 1, 1), "surprise": (2, 1, 1)}


def face(seed: int, size: tuple[int, int] = (S, S), mode: str = "L") -> Image.Image:
    """A distinct, smooth-ish test image (smooth so JPEG keeps it recognisable)."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    base = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3)).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(base).resize((w, h), Image.BILINEAR))
    if mode == "L":
        return Image.fromarray(rgb).convert("L")
    if mode == "RGBA":
        alpha = np.full((h, w, 1), 200, np.uint8)
        return Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA")
    if mode == "I;16":
        gray = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
        return Image.fromarray(gray)  # 16-bit grayscale
    return Image.fromarray(rgb)


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def kaggle_members(counts: dict[str, tuple[int, int, int]] = KAGGLE_COUNTS, seed: int = 0) -> dict[str, bytes]:
    """Member name -> JPEG bytes, laid out like the Kaggle FER-2013 download."""
    members, k = {}, seed * 1000
    for cls, (n_train, n_val, n_test) in counts.items():
        for prefix, top, n in (("Training", "train", n_train), ("PublicTest", "test", n_val), ("PrivateTest", "test", n_test)):
            for _ in range(n):
                k += 1
                members[f"{top}/{cls}/{prefix}_{1000 + k}.jpg"] = jpeg_bytes(face(k))
    return members


def write_zip(path: Path, members: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(prefix + name, data)
    return path


def write_tree(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def load_quiet(path: Path, **kw) -> FaceDataset:
    kw.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean source must not warn
        return load_dataset(path, **kw)


def by_name(ds: FaceDataset) -> dict[str, tuple[np.ndarray, int, int]]:
    return {str(n): (ds.images[i], int(ds.labels[i]), int(ds.split[i])) for i, n in enumerate(ds.names)}


# --- Kaggle zip and folders -------------------------------------------------------------------


def test_kaggle_zip_splits_labels_and_pixels(tmp_path):
    members = kaggle_members()
    path = write_zip(tmp_path / "archive.zip", members)
    ds = load_quiet(path)
    assert ds.image_size == S and ds.images.dtype == np.uint8 and ds.classes == EMOTIONS
    for i, s in enumerate(SPLITS):
        assert ds.class_counts(s) == {c: n[i] for c, n in KAGGLE_COUNTS.items()}
    assert ds.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.skipped == []
    for name, (img, label, split) in by_name(ds).items():
        assert np.array_equal(img, prepare_face(load_image(members[name]), PreprocessConfig()))  # same as Pillow's decode
        assert EMOTIONS[label] == name.split("/")[1]
        assert SPLITS[split] == {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}[name.split("/")[2].split("_")[0]]


def test_kaggle_zip_inside_a_wrapper_folder_and_extracted_folders_agree(tmp_path):
    members = kaggle_members()
    plain = by_name(load_quiet(write_zip(tmp_path / "a.zip", members)))
    wrapped = by_name(load_quiet(write_zip(tmp_path / "b.zip", members, prefix="fer2013/")))
    folders = load_quiet(write_tree(tmp_path / "extracted", members))
    assert folders.source_sha256 != "" and len(folders.source_sha256) == 64
    for other in (wrapped, by_name(folders)):
        assert other.keys() == plain.keys()
        for name, (img, label, split) in plain.items():
            o_img, o_label, o_split = other[name]
            assert np.array_equal(img, o_img) and label == o_label and split == o_split


def test_image_size_and_label_map_drop(tmp_path):
    path = write_zip(tmp_path / "archive.zip", kaggle_members())
    ds = load_quiet(path, image_size=32)
    assert ds.images.shape[1:] == (32, 32)
    with pytest.warns(DataWarning, match=r"disgust \(2\)"):
        dropped = load_dataset(path, label_map={"disgust": None}, progress=False)
    assert dropped.class_counts()["disgust"] == 0 and len(dropped) == len(ds) - 2
    assert sum("'disgust' is not one of the 7 emotions" in m for m in dropped.skipped) == 2


# --- fer2013.csv and FER+ ----------------------------------------------------------------------


def write_fer_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["emotion,pixels,Usage", *(f"{e},{p},{u}" for e, p, u in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def pixels_of(seed: int) -> np.ndarray:
    return np.asarray(face(seed), np.uint8)


def pix_str(arr: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in arr.ravel())


CSV_USAGE = ["Training", "Training", "Training", "PublicTest", "PrivateTest", "Training", "PublicTest"]


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    # One row per csv emotion index 0..6, in FER2013_CSV_ORDER.
    rows = [(str(i), pix_str(pixels_of(100 + i)), CSV_USAGE[i]) for i in range(7)]
    return write_fer_csv(tmp_path / "fer2013.csv", rows)


def test_fer2013_csv(fer_csv):
    ds = load_quiet(fer_csv)
    assert len(ds) == 7 and ds.source_sha256 == hashlib.sha256(fer_csv.read_bytes()).hexdigest()
    for i in range(7):
        assert ds.names[i] == f"row {i}"
        assert EMOTIONS[ds.labels[i]] == FER2013_CSV_ORDER[i]  # 4 is sad, 6 is neutral
        assert np.array_equal(ds.images[i], pixels_of(100 + i))
        assert SPLITS[ds.split[i]] == {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}[CSV_USAGE[i]]
    assert EMOTIONS[ds.labels[6]] == "neutral" and EMOTIONS[ds.labels[4]] == "sad"
    # A folder holding only the csv is read as the csv.
    assert np.array_equal(load_quiet(fer_csv.parent).images, ds.images)


def test_fer2013_csv_bad_rows_are_skipped_and_named(tmp_path):
    good = pix_str(pixels_of(1))
    rows = [
        ("3", good, "Training"),
        ("2", " ".join(["7"] * (S * S - 1)), "Training"),  # row 1: one pixel short
        ("7", good, "Training"),  # row 2: no such emotion
        ("happy", good, "PublicTest"),  # row 3: not an index
        ("0", good.replace("7", "x", 1) if "7" in good else "x " + good, "Training"),  # row 4: not a number
        ("1", good, "Holdout"),  # row 5: unknown Usage
        ("0", " ".join(["300"] * (S * S)), "Training"),  # row 6: out of 0-255
        ("5", good, "PrivateTest"),
    ]
    path = write_fer_csv(tmp_path / "fer2013.csv", rows)
    with open(path, "a") as f:
        f.write("4,1 2 3\n")  # row 8: missing a field
    with pytest.warns(DataWarning, match="loaded 2 images, skipped 7 items"):
        ds = load_dataset(path, progress=False)
    assert [str(n) for n in ds.names] == ["row 0", "row 7"]
    msgs = "\n".join(ds.skipped)
    assert len(ds.skipped) == 7
    for needle in (
        f"row 1 (line 3): {S * S - 1} pixel values, expected {S * S}",
        "row 2 (line 4): unknown emotion label '7'",
        "row 3 (line 5): unknown emotion label 'happy'",
        "row 4 (line 6): pixels are not all integers",
        "row 5 (line 7): Usage 'Holdout'",
        "row 6 (line 8): pixel values outside 0-255",
        "row 8 (line 10): 2 fields, expected 3",
    ):
        assert needle in msgs


def test_fer2013_csv_missing_columns(tmp_path):
    path = tmp_path / "faces.csv"
    path.write_text("emotion,pixels\n0,1 2 3\n")
    with pytest.raises(DataError, match="unknown dataset layout"):
        load_dataset(path, progress=False)


FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
# Votes in file column order: neutral happiness surprise sadness anger disgust fear contempt unknown NF
FERPLUS_VOTES = [
    (0, 8, 2, 0, 0, 0, 0, 0, 0, 0),  # row 0: happy
    (6, 0, 0, 4, 0, 0, 0, 0, 0, 0),  # row 1: neutral
    (0, 0, 0, 0, 1, 0, 0, 6, 3, 0),  # row 2: contempt majority -> dropped
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 10),  # row 3: not a face -> dropped
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # row 4: no votes at all -> dropped
    (0, 0, 3, 0, 0, 0, 5, 0, 2, 0),  # row 5: fear
    (0, 0, 0, 0, 4, 4, 0, 0, 2, 0),  # row 6: anger/disgust tie -> dropped
]


def write_ferplus(path: Path, usages: list[str], votes=FERPLUS_VOTES) -> Path:
    lines = [FERPLUS_HEADER]
    for i, (usage, v) in enumerate(zip(usages, votes, strict=True)):
        lines.append(f"{usage},fer{i:07d}.png," + ",".join(map(str, v)))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ferplus_majority_votes(fer_csv, tmp_path):
    fp = write_ferplus(tmp_path / "fer2013new.csv", CSV_USAGE)
    with pytest.warns(DataWarning, match="skipped 4 items"):
        ds = load_dataset(fer_csv, ferplus=fp, progress=False)
    assert [str(n) for n in ds.names] == ["row 0", "row 1", "row 5"]
    assert [EMOTIONS[i] for i in ds.labels] == ["happy", "neutral", "fear"]
    assert ds.soft_labels is None
    msgs = "\n".join(ds.skipped)
    assert "row 2: FER+ majority is contempt" in msgs and "row 3: FER+ majority is NF" in msgs
    assert "row 4: no votes among the 7 emotions" in msgs
    assert "row 6: FER+ votes tied between anger and disgust (4 each)" in msgs
    assert np.array_equal(ds.images[2], pixels_of(105))  # row 5's pixels stay with row 5


def test_ferplus_soft_labels(fer_csv, tmp_path):
    fp = write_ferplus(tmp_path / "fer2013new.csv", CSV_USAGE)
    with pytest.warns(DataWarning):
        ds = load_dataset(fer_csv, ferplus=fp, soft_labels=True, progress=False)
    assert ds.soft_labels.shape == (3, 7) and ds.soft_labels.dtype == np.float32
    np.testing.assert_allclose(ds.soft_labels.sum(1), 1.0, rtol=1e-6)
    happy = dict(zip(EMOTIONS, ds.soft_labels[0], strict=True))
    assert happy["happy"] == pytest.approx(0.8) and happy["surprise"] == pytest.approx(0.2)
    fear = dict(zip(EMOTIONS, ds.soft_labels[2], strict=True))
    assert fear["fear"] == pytest.approx(5 / 8) and fear["surprise"] == pytest.approx(3 / 8)  # unknown votes left out
    assert np.array_equal(ds.labels, ds.soft_labels.argmax(1))


def test_ferplus_misaligned_or_misused(fer_csv, tmp_path):
    swapped = write_ferplus(tmp_path / "swapped.csv", ["PublicTest", *CSV_USAGE[1:]])
    with pytest.raises(DataError, match="not aligned"):
        load_dataset(fer_csv, ferplus=swapped, progress=False, cache=False)
    short = write_ferplus(tmp_path / "short.csv", CSV_USAGE[:5], FERPLUS_VOTES[:5])
    with pytest.raises(DataError, match="has 5 rows but"):
        load_dataset(fer_csv, ferplus=short, progress=False, cache=False)
    with pytest.raises(ConfigError, match="FER\\+ label file"):
        load_dataset(swapped, progress=False)
    with pytest.raises(ConfigError, match="soft_labels=True needs FER\\+"):
        load_dataset(fer_csv, soft_labels=True, progress=False)
    zipped = write_zip(tmp_path / "a.zip", kaggle_members())
    with pytest.raises(DataError, match=r"is a file of the Kaggle FER-2013 download"):
        load_dataset(zipped, ferplus=swapped, progress=False)
    with pytest.raises(DataError, match="FER\\+ label file not found"):
        load_dataset(fer_csv, ferplus=tmp_path / "nope.csv", progress=False)


# --- generic folder-per-class datasets -------------------------------------------------------


def save(img: Image.Image, path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path.read_bytes()


@pytest.fixture
def folder_dataset(tmp_path) -> Path:
    """Alias class names, several modes and sizes, a class outside the seven, a user mapping."""
    root = tmp_path / "ckplus"
    specs = {"Happiness": "RGB", "anger": "RGBA", "SU": "I;16", "sadness": "L", "Fearful": "RGB", "neutral": "L", "Disgusted": "RGB", "joyful": "L"}
    sizes = [(64, 64), (100, 80), (31, 47), (48, 48), (200, 150)]
    k = 0
    for cls, mode in specs.items():
        for j in range(10):
            k += 1
            suffix = ".jpg" if mode in ("L", "RGB") and j % 2 else ".png"
            save(face(k, sizes[k % len(sizes)], mode), root / cls / f"img{j}{suffix}")
    for j in range(3):
        save(face(900 + j), root / "contempt" / f"c{j}.png")
    return root


def test_folder_dataset_aliases_modes_and_stratified_split(folder_dataset):
    with pytest.warns(DataWarning, match=r"contempt \(3\)"):
        ds = load_dataset(folder_dataset, label_map={"joyful": "happy"}, progress=False)
    assert len(ds) == 80
    counts = ds.class_counts()
    assert counts == {"angry": 10, "disgust": 10, "fear": 10, "happy": 20, "neutral": 10, "sad": 10, "surprise": 10}
    assert sum("contempt" in m for m in ds.skipped) == 3
    # Every image is converted exactly as a photo would be.
    cfg = PreprocessConfig()
    for img, name in zip(ds.images, ds.names, strict=True):
        assert np.array_equal(img, prepare_face(folder_dataset / str(name), cfg))
    # Seeded, stratified split: 10% val, 10% test, each class represented where it can be.
    assert [int((ds.split == i).sum()) for i in range(3)] == [64, 8, 8]
    assert set(ds.labels[ds.split == SPLITS.index("test")]) >= {EMOTIONS.index("happy")}
    with pytest.warns(DataWarning):
        again = load_dataset(folder_dataset, label_map={"joyful": "happy"}, progress=False)
        other = load_dataset(folder_dataset, label_map={"joyful": "happy"}, seed=1, progress=False)
    assert np.array_equal(again.split, ds.split) and not np.array_equal(other.split, ds.split)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset(folder_dataset, val_fraction=1.2)
    with pytest.raises(ConfigError, match="label_map sends 'joyful' to 'glad'"):
        load_dataset(folder_dataset, label_map={"joyful": "glad"})


def test_folder_dataset_with_split_folders(tmp_path):
    root = tmp_path / "mine"
    k = 0
    for split, n in (("train", 3), ("validation", 2), ("test", 1)):
        for cls in ("happy", "sad"):
            for _ in range(n):
                k += 1
                save(face(k), root / split / cls / f"training_{k}.png")  # not a FER name: the folder decides
    ds = load_quiet(root)
    assert [int((ds.split == i).sum()) for i in range(3)] == [6, 4, 2]
    assert ds.class_counts("val") == {**dict.fromkeys(EMOTIONS, 0), "happy": 2, "sad": 2}


def test_missing_val_split_is_carved_from_train(tmp_path):
    members = {k: v for k, v in kaggle_members({"happy": (20, 0, 5), "sad": (10, 0, 5)}).items()}
    renamed = {k.replace("Training_", "t").replace("PrivateTest_", "p"): v for k, v in members.items()}  # no prefixes
    ds = load_quiet(write_tree(tmp_path / "tt", renamed), val_fraction=0.2)
    assert ds.class_counts("test") == {**dict.fromkeys(EMOTIONS, 0), "happy": 5, "sad": 5}
    assert ds.class_counts("val") == {**dict.fromkeys(EMOTIONS, 0), "happy": 4, "sad": 2}  # stratified 20% of train


def test_assign_splits_keeps_given_splits():
    labels = np.arange(30) % 3
    split = np.repeat(np.array([0, 1, 2], np.int8), 10)
    assert np.array_equal(assign_splits(labels, split, val_fraction=0.1, test_fraction=0.1, seed=0), split)


# --- bad input -------------------------------------------------------------------------------


def test_bad_files_are_skipped_and_named(tmp_path):
    root = tmp_path / "messy"
    for j in range(4):
        save(face(j), root / "happy" / f"ok{j}.png")
        save(face(10 + j), root / "sad" / f"ok{j}.jpg")
    (root / "happy" / "broken.jpg").write_bytes(jpeg_bytes(face(99))[:200])  # truncated JPEG
    (root / "sad" / "notes.txt").write_text("not an image")
    (root / "sad" / "empty.png").write_bytes(b"")
    (root / "fear").mkdir()
    (root / "stray.png").write_bytes(jpeg_bytes(face(5)))
    (root / "README.md").write_text("notes beside the class folders are fine")
    (root / ".DS_Store").write_bytes(b"\0\0")
    with pytest.warns(DataWarning, match="loaded 8 images, skipped 5 items") as rec:
        ds = load_dataset(root, progress=False)
    assert len(ds) == 8 and len(ds.skipped) == 5
    assert len(rec) == 1  # one summary, not one warning per file
    msgs = "\n".join(ds.skipped)
    assert "happy/broken.jpg: not a readable image" in msgs
    assert "sad/notes.txt: not a readable image" in msgs
    assert "sad/empty.png: empty data (0 bytes)" in msgs
    assert "fear/: empty class folder" in msgs
    assert "stray.png: image directly in the dataset root" in msgs


def test_bad_zip_members_are_skipped(tmp_path):
    members = kaggle_members()
    members["train/happy/Training_bad.jpg"] = b"\xff\xd8 garbage \xff\xd9"
    members["train/sad/"] = b""
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("test/contempt/", b"")
    with pytest.warns(DataWarning, match="skipped 2 items"):
        ds = load_dataset(tmp_path / "a.zip", progress=False)
    assert len(ds) == sum(map(sum, KAGGLE_COUNTS.values()))
    assert any("train/happy/Training_bad.jpg: not a readable image" in m for m in ds.skipped)
    assert any("test/contempt/: empty class folder" in m for m in ds.skipped)


def test_nothing_usable_raises(tmp_path):
    root = tmp_path / "junk"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "a.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"nothing usable.*happy/a.jpg: not a readable image"):
        load_dataset(root, progress=False)


def test_zip_without_layout_and_unknown_sources(tmp_path):
    flat = write_zip(tmp_path / "flat.zip", {"a.jpg": jpeg_bytes(face(1)), "b.jpg": jpeg_bytes(face(2))})
    with pytest.raises(DataError, match=r"flat.zip: no images in class folders .*expected a zip of class folders"):
        load_dataset(flat, progress=False)
    with pytest.raises(DataError, match=r"no such file or folder; expected one of:\n  - FER\+ image folders"):
        load_dataset(tmp_path / "missing.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"(?s)unknown dataset layout .*fer2013.csv .*folder of class folders"):
        load_dataset(tmp_path / "notes.txt")
    only_files = tmp_path / "only_files"
    only_files.mkdir()
    (only_files / "a.jpg").write_bytes(jpeg_bytes(face(1)))
    with pytest.raises(DataError, match="unknown dataset layout for this folder"):
        load_dataset(only_files)


# --- cache -----------------------------------------------------------------------------------


def test_cache_hit_identical_and_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))
    path = write_zip(tmp_path / "archive.zip", kaggle_members())
    first = load_quiet(path)
    entries = sorted((cache_dir() / "datasets").glob("*.npz"))
    assert len(entries) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds this source")

    monkeypatch.setattr(ZipReader, "read", no_decoding)
    second = load_quiet(path)
    for field in ("images", "labels", "split", "names"):
        assert np.array_equal(getattr(first, field), getattr(second, field))
    assert second.source_sha256 == first.source_sha256
    with np.load(entries[0], allow_pickle=False) as npz:  # plain arrays, no pickles
        assert npz["images"].dtype == np.uint8

    # Another image size, or a changed source, is another key: decoding is needed again.
    with pytest.raises(AssertionError, match="decoded again"):
        load_quiet(path, image_size=40)
    write_zip(path, kaggle_members(seed=1))
    with pytest.raises(AssertionError, match="decoded again"):
        load_quiet(path)
    monkeypatch.undo()
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))
    changed = load_quiet(path)
    assert changed.source_sha256 != first.source_sha256 and not np.array_equal(changed.images, first.images)
    assert len(list((cache_dir() / "datasets").glob("*.npz"))) == 2


def test_folder_cache_key_follows_content(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))
    root = write_tree(tmp_path / "tree", kaggle_members())
    a = load_quiet(root)
    first = sorted((root / "train" / "happy").iterdir())[0]
    first.rename(first.with_name("Training_9999.jpg"))
    b = load_quiet(root)
    assert a.source_sha256 != b.source_sha256 and "train/happy/Training_9999.jpg" in set(b.names)


def test_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))
    path = write_zip(tmp_path / "archive.zip", kaggle_members())
    first = load_quiet(path)
    (entry,) = (cache_dir() / "datasets").glob("*.npz")
    entry.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable dataset cache"):
        again = load_dataset(path, progress=False)
    assert np.array_equal(again.images, first.images)
    assert np.load(entry, allow_pickle=False)["images"].shape == first.images.shape  # rewritten


def test_the_summary_counts_faces_ferplus_drops_apart_from_unreadable_ones():
    from emolens.data.loading import _summarise
    from emolens.data.readers.base import RawData

    raw = RawData(
        images=np.zeros((3, 48, 48), np.uint8), labels=np.zeros(3, np.int64), split=np.zeros(3, np.int8), names=np.array(["a", "b", "c"]),
        skipped=["FER2013Test/fer0032220.png: FER+ majority is contempt; skipped",
                 "FER2013Test/fer0032256.png: FER+ votes tied between surprise and unknown (4 each); skipped",
                 "FER2013Train/fer0000001.png: not a readable image (OSError); skipped"],
    )
    summary = _summarise(Path("ferplus-images.zip"), raw, 3)
    assert "skipped 3 items (2 without a FER+ majority among the 7 emotions" in summary, summary
    assert "1 unreadable or misplaced, e.g. FER2013Train/fer0000001.png" in summary and "contempt; skipped" not in summary
