"""FER+ in the forms users have it: the image folders with label.csv (zipped or extracted), and
votes for the Kaggle download through the shipped map; plus the real files when present."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolens.data import load_dataset
from emolens.data.ferplus_map import build_kaggle_map, read_map, shipped_map_path, write_map
from emolens.data.readers.base import RawData
from emolens.errors import ConfigError
from emolens.labels import EMOTIONS

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
FERPLUS_DIR = SHARED / "ferplus"
FER_ARCHIVE = SHARED / "fer2013" / "archive.zip"

# name -> votes (neutral happiness surprise sadness anger disgust fear contempt unknown NF)
VOTES = {
    "FER2013Train": {
        "fer0000000.png": (0, 9, 1, 0, 0, 0, 0, 0, 0, 0),  # happy
        "fer0000001.png": (2, 0, 0, 8, 0, 0, 0, 0, 0, 0),  # sad
        "fer0000002.png": (0, 0, 0, 0, 5, 5, 0, 0, 0, 0),  # tie -> dropped
        "fer0000003.png": (0, 0, 0, 0, 0, 0, 0, 0, 0, 10),  # not a face -> dropped
    },
    "FER2013Valid": {"fer0000004.png": (0, 0, 7, 0, 0, 0, 3, 0, 0, 0)},  # surprise
    "FER2013Test": {
        "fer0000005.png": (6, 0, 0, 0, 0, 0, 0, 4, 0, 0),  # neutral
        "fer0000006.png": (0, 0, 0, 0, 0, 0, 2, 8, 0, 0),  # contempt -> dropped
    },
}


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).resize((48, 48), Image.BILINEAR))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def ferplus_members() -> dict[str, bytes]:
    members = {}
    for split_dir, rows in VOTES.items():
        lines = []
        for name, votes in rows.items():
            members[f"{split_dir}/{name}"] = png(int(name[3:10]))
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        members[f"{split_dir}/label.csv"] = ("\n".join(lines) + "\n").encode()
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(path, progress=False, **kw)


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_ferplus_image_folders_majority_and_soft(tmp_path, form):
    members = ferplus_members()
    if form == "zip":
        src = write_zip(tmp_path / "ferplus.zip", {f"FERPlus/{k}": v for k, v in members.items()})  # under a wrapper folder
    else:
        src = tmp_path / "ferplus"
        for name, data in members.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
    ds = load_quiet(src)
    got = {str(n).rsplit("/", 1)[-1]: (EMOTIONS[label], ["train", "val", "test"][s]) for n, label, s in zip(ds.names, ds.labels, ds.split, strict=True)}
    assert got == {
        "fer0000000.png": ("happy", "train"), "fer0000001.png": ("sad", "train"),
        "fer0000004.png": ("surprise", "val"), "fer0000005.png": ("neutral", "test"),
    }
    skipped = "\n".join(ds.skipped)
    assert "fer0000002.png: FER+ votes tied between anger and disgust (5 each)" in skipped
    assert "fer0000003.png: FER+ majority is NF" in skipped and "fer0000006.png: FER+ majority is contempt" in skipped
    soft = load_quiet(src, soft_labels=True)
    assert soft.soft_labels.shape == (4, 7)
    np.testing.assert_allclose(soft.soft_labels.sum(1), 1.0, rtol=1e-6)
    happy = dict(zip(EMOTIONS, soft.soft_labels[list(got).index("fer0000000.png")], strict=True))
    assert happy["happy"] == pytest.approx(0.9) and happy["surprise"] == pytest.approx(0.1)


def test_ferplus_image_folders_bad_rows_and_missing_images(tmp_path):
    members = ferplus_members()
    members["FER2013Test/label.csv"] += b'fer0000009.png,"(0, 0, 48, 48)",1,2,x,0,0,0,0,0,0,0\nfer0000010.png,"(0, 0, 48, 48)",9,1,0,0,0,0,0,0,0,0\n'
    ds = load_quiet(write_zip(tmp_path / "f.zip", members))
    skipped = "\n".join(ds.skipped)
    assert "FER2013Test/label.csv line 3: vote counts" in skipped
    assert "FER2013Test/fer0000010.png: listed in FER2013Test/label.csv but cannot be read" in skipped
    assert len(ds) == 4
    with pytest.raises(ConfigError, match=r"carries its votes in label\.csv"):
        load_dataset(tmp_path / "f.zip", ferplus=tmp_path / "f.zip", progress=False)


def test_kaggle_map_matches_jpeg_copies_and_labels_the_zip(tmp_path, monkeypatch):
    """A Kaggle-style zip of JPEG copies of the FER+ PNGs: the map finds each one's original,
    an unrelated face stays unmatched, and --ferplus then labels the zip through the map."""
    members = ferplus_members()
    fp_zip = write_zip(tmp_path / "ferplus.zip", members)
    kaggle = {}
    usage = {"FER2013Train": ("train", "Training"), "FER2013Valid": ("test", "PublicTest"), "FER2013Test": ("test", "PrivateTest")}
    for split_dir, rows in VOTES.items():
        top, prefix = usage[split_dir]
        for name in rows:
            buf = io.BytesIO()
            Image.open(io.BytesIO(members[f"{split_dir}/{name}"])).save(buf, format="JPEG", quality=90)
            kaggle[f"{top}/happy/{prefix}_{100 + int(name[3:10])}.jpg"] = buf.getvalue()
    stranger = io.BytesIO()
    Image.fromarray(np.full((48, 48), 200, np.uint8)).save(stranger, format="JPEG")
    kaggle["train/happy/Training_999.jpg"] = stranger.getvalue()
    k_zip = write_zip(tmp_path / "archive.zip", kaggle)
    k_ds = load_quiet(k_zip)
    raw = RawData(images=k_ds.images, labels=k_ds.labels, split=k_ds.split, names=k_ds.names)
    result = build_kaggle_map(raw, fp_zip)
    assert result.unmatched == ["train/happy/Training_999.jpg"]
    assert result.names["train/happy/Training_100.jpg"] == "fer0000000.png"
    assert result.names["test/happy/PrivateTest_105.jpg"] == "fer0000005.png"
    assert (result.rmse < 3).all()

    map_file = write_map(result.names, tmp_path / "map.csv.gz")
    assert read_map(map_file) == result.names
    monkeypatch.setattr("emolens.data.ferplus_map.shipped_map_path", lambda: map_file)
    usages = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for split_dir, rows in VOTES.items():
        lines += [f"{usages[split_dir]},{name}," + ",".join(map(str, v)) for name, v in rows.items()]
    csv_path = tmp_path / "fer2013new.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    ds = load_quiet(k_zip, ferplus=csv_path, soft_labels=True)
    labelled = {str(n): EMOTIONS[label] for n, label in zip(ds.names, ds.labels, strict=True)}
    assert labelled == {
        "train/happy/Training_100.jpg": "happy", "train/happy/Training_101.jpg": "sad",
        "test/happy/PublicTest_104.jpg": "surprise", "test/happy/PrivateTest_105.jpg": "neutral",
    }
    assert ds.soft_labels is not None and "no FER+ counterpart" in "\n".join(ds.skipped)
    # fer2013_share: the face's own FER-2013 label (all "happy" here) mixed into its votes.
    mixed = load_quiet(k_zip, ferplus=csv_path, soft_labels=True, fer2013_share=0.5)
    sad = dict(zip(EMOTIONS, mixed.soft_labels[list(mixed.names).index("train/happy/Training_101.jpg")], strict=True))
    assert sad["happy"] == pytest.approx(0.5) and sad["sad"] == pytest.approx(0.4) and sad["neutral"] == pytest.approx(0.1)
    assert EMOTIONS[mixed.labels[list(mixed.names).index("train/happy/Training_101.jpg")]] == "sad"  # labels stay FER+ majority
    with pytest.raises(ConfigError, match="fer2013_share"):
        load_quiet(fp_zip, soft_labels=True, fer2013_share=0.5)


def test_shipped_map_is_readable():
    mapping = read_map(shipped_map_path())
    assert len(mapping) == 35712
    assert all(v.startswith("fer") and v.endswith(".png") for v in list(mapping.values())[:100])


@pytest.mark.fer2013
def test_real_ferplus_folders_and_kaggle_labels_agree():
    if not (FER_ARCHIVE.exists() and (FERPLUS_DIR / "ferplus-images.zip").exists()):
        pytest.skip("FER-2013 archive or FER+ files not found in ../shared/datasets")
    images = load_quiet(FERPLUS_DIR / "ferplus-images.zip")
    kaggle = load_quiet(FER_ARCHIVE, ferplus=FERPLUS_DIR / "fer2013new.csv")
    for split in ("train", "val", "test"):
        a, b = images.class_counts(split), kaggle.class_counts(split)
        assert sum(a.values()) == pytest.approx(sum(b.values()), rel=0.01)
        for cls in EMOTIONS:
            assert abs(a[cls] - b[cls]) <= max(5, 0.02 * a[cls]), (split, cls, a[cls], b[cls])


def test_packed_copy_for_the_gpu_machine_loads_the_same_faces(tmp_path, monkeypatch):
    """tools/pack_ferplus.py re-encodes the faces as WebP: the copy must decode to the same
    pixels, labels and vote shares, and never overwrite a file."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    import pack_ferplus

    src = write_zip(tmp_path / "ferplus.zip", ferplus_members())
    out = tmp_path / "packed.zip"
    pack_ferplus.main([str(src), str(out), "--splits", "FER2013Train", "FER2013Valid"])
    with zipfile.ZipFile(out) as zf:
        assert not any(n.endswith(".png") for n in zf.namelist())
    whole, packed = load_quiet(src, soft_labels=True), load_quiet(out, soft_labels=True)
    keep = np.asarray(whole.split) != 2  # the test folder was left out
    np.testing.assert_array_equal(packed.images, whole.images[keep])
    np.testing.assert_array_equal(packed.soft_labels, whole.soft_labels[keep])
    assert [str(n).replace(".webp", ".png") for n in packed.names] == [str(n) for n, k in zip(whole.names, keep, strict=True) if k]
    with pytest.raises(SystemExit, match="exists"):
        pack_ferplus.main([str(src), str(out)])
