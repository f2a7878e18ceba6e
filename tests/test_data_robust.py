"""Issue 14, data: nothing a dataset holds can crash, exhaust or mislead the loaders.

Every bad input is built here in tmp_path. Each one must become one skipped item whose message
names it (or one DataError that says what is wrong), never a traceback, a hang or a MemoryError.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import struct
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolens.cli import main
from emolens.data import load_dataset
from emolens.data.cache import cache_dir, hash_tree, save_cached
from emolens.data.loading import DataWarning, detect_reader
from emolens.data.readers import base, zip_archive
from emolens.errors import DataError
from emolens.preprocessing import load_image
from imaging import png_header

MB = 1 << 20


def png_bytes(seed: int, side: int = 20) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def faces_folder(root: Path, per_class: int = 3) -> Path:
    for c, cls in enumerate(("happy", "sad")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            (root / cls / f"{k}.png").write_bytes(png_bytes(10 * c + k))
    return root


def load(path: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return load_dataset(path, progress=False, **kw)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    # A cache folder per test, so the cache tests see only their own entries.
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_hang():
    """Fail (SIGALRM) instead of hanging the suite when a FIFO blocks a read."""
    def _hung(signum, frame):
        raise TimeoutError("blocked for 30 s: a FIFO or device was opened")

    old = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --- decompression bombs -----------------------------------------------------------------------


def test_load_image_refuses_a_bomb_header_naming_pixels_and_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(50000, 50000))  # PIL: DecompressionBombError (over 2x its limit)
    with pytest.raises(DataError, match=r"bomb.png: image too large .*2500000000 pixels.*limit"):
        load_image(path)
    # 10000x10000 is only a DecompressionBombWarning to PIL, which would then decode 100 megapixels.
    with pytest.raises(DataError, match=r"warn.png: .*100000000 pixels.*limit"):
        load_image(png_header(10000, 10000), name="warn.png")


def test_bomb_png_is_one_skipped_item_in_data_stats_and_training(tmp_path, capsys):
    root = faces_folder(tmp_path / "faces")
    (root / "happy" / "bomb.png").write_bytes(png_header(50000, 50000))
    (root / "sad" / "big.png").write_bytes(png_header(10000, 10000))
    ds = load(root, cache=False)
    assert len(ds) == 6 and len(ds.skipped) == 2
    assert any(m.startswith("happy/bomb.png: image too large") and "2500000000 pixels" in m for m in ds.skipped)
    assert any(m.startswith("sad/big.png: image too large") and "100000000 pixels" in m for m in ds.skipped)

    assert main(["data", "stats", str(root), "--out", str(tmp_path / "stats"), "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 2 items:" in printed
    assert "  - happy/bomb.png: image too large" in printed and "  - sad/big.png: image too large" in printed

    from emolens.training.config import TrainConfig
    from emolens.training.trainer import load_training_data

    cfg = TrainConfig()
    cfg.data.path = str(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        train_ds = load_training_data(cfg, progress=False)
    assert len(train_ds) == 6 and any("bomb.png" in m for m in train_ds.skipped)


def test_bomb_zip_member_is_skipped(tmp_path):
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for k in range(3):
            zf.writestr(f"happy/{k}.png", png_bytes(k))
        zf.writestr("happy/bomb.png", png_header(50000, 50000))
    ds = load(path, cache=False)
    assert len(ds) == 3 and len(ds.skipped) == 1 and ds.skipped[0].startswith("happy/bomb.png: image too large")


def test_predict_batch_survives_a_bomb_and_writes_the_table(tmp_path, capsys):
    pytest.importorskip("cv2")
    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline.samples import astronaut

    model = save_model(build_model(ModelConfig(arch="simple_cnn", name="random", version="0")).eval(), tmp_path / "m.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut()).save(photos / "astronaut.jpg")
    (photos / "bomb.png").write_bytes(png_header(50000, 50000))
    out = tmp_path / "out"
    assert main(["predict", str(photos), "--model", str(model), "--out", str(out), "--no-save"]) == 0
    captured = capsys.readouterr()
    assert "bomb.png: image too large" in captured.err and "1 could not be read" in captured.out
    assert (out / "predictions.json").is_file()
    assert "astronaut.jpg" in (out / "predictions.json").read_text()


def test_predict_survives_odd_files_and_a_non_utf8_name(tmp_path, capsys, no_hang):
    pytest.importorskip("cv2")
    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline.samples import astronaut

    model = save_model(build_model(ModelConfig(arch="simple_cnn", name="random", version="0")).eval(), tmp_path / "m.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut()).save(photos / os.fsdecode(b"\xff.jpg"))  # OpenCV's imwrite segfaulted on this name
    os.mkfifo(photos / "pipe.jpg")
    (photos / "zero.jpg").symlink_to("/dev/zero")
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    out = tmp_path / "out"
    for fmt in ("json", "csv"):
        argv = ["predict", str(photos), str(photos / "pipe.jpg"), str(photos / "zero.jpg"), "--model", str(model), "--out", str(out), "--format", fmt]
        assert main(argv) == 0
    captured = capsys.readouterr()
    assert "pipe.jpg: not a regular file" in captured.err and "zero.jpg: not a regular file" in captured.err
    assert "gone.jpg: dangling symbolic link" in captured.err  # inside a folder too: named, never a silent skip
    assert captured.err.count("pipe.jpg: not a regular file") == 2  # once per run, though listed twice
    rows = json.loads((out / "predictions.json").read_text())
    assert [Path(r["path"]).name for r in rows] == ["\\xff.jpg"] and rows[0]["image"] == "\\xff.jpg"
    assert "photos/\\xff.jpg" in (out / "predictions.csv").read_text(encoding="utf-8")
    assert (out / "\\xff.jpg").is_file()  # the annotated copy, under a printable name


# --- odd files in folders ----------------------------------------------------------------------


def test_links_pipes_devices_and_non_utf8_names_are_skipped_items(tmp_path, no_hang):
    root = faces_folder(tmp_path / "faces")
    (root / "happy" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(root / "happy" / "pipe.png")
    (root / "sad" / "zero.png").symlink_to("/dev/zero")
    (root / "sad" / os.fsdecode(b"\xff.png")).write_bytes(png_bytes(99))  # a Latin-1 name on a UTF-8 system
    (root / "sad" / "ok-link.png").symlink_to(root / "sad" / "0.png")  # a link to an image is an image
    ds = load(root)
    msgs = "\n".join(ds.skipped)
    assert len(ds) == 7 and len(ds.skipped) == 4, msgs
    assert "happy/gone.png: dangling symbolic link" in msgs
    assert "happy/pipe.png: not a regular file" in msgs
    assert "sad/zero.png: not a regular file" in msgs
    assert "sad/\\xff.png: file name is not valid UTF-8" in msgs
    assert "sad/ok-link.png" in set(ds.names)
    assert load(root).skipped == ds.skipped  # and the cache entry round-trips the same messages


def test_files_beside_the_class_folders_are_never_read(tmp_path, no_hang):
    root = faces_folder(tmp_path / "faces")
    video = root / "video.mp4"
    with open(video, "wb") as f:  # sparse: 1.5 GB long, no disk used; read whole it costs 1.5 GB of memory
        f.truncate(1536 * MB)
    os.mkfifo(root / "fifo")
    (root / "zero").symlink_to("/dev/zero")
    (root / "gone").symlink_to(tmp_path / "nowhere")
    before = max_rss_mb()
    reader = detect_reader(root)
    first = reader.fingerprint()
    ds = load(root)
    grown = max_rss_mb() - before
    assert len(ds) == 6 and ds.skipped == []
    assert grown < 200, f"peak memory grew by {grown:.0f} MB"
    # Names still count (a new file is a new dataset), contents of non-images do not.
    with open(video, "r+b") as f:
        f.write(b"edited")
    assert detect_reader(root).fingerprint() == first
    (root / "notes.txt").write_text("hello")
    assert detect_reader(root).fingerprint() != first


def test_hash_tree_streams_and_skips_what_is_not_a_regular_file(tmp_path, no_hang):
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    os.mkfifo(tmp_path / "b.png")
    (tmp_path / "c.png").symlink_to("/dev/zero")
    (tmp_path / "d.png").symlink_to(tmp_path / "nowhere")
    files = sorted(tmp_path.iterdir())
    digest = hash_tree(tmp_path, files)
    assert digest == hash_tree(tmp_path, files) and digest != hash_tree(tmp_path, files[:1])


def test_image_files_over_the_size_limit_are_skipped_unread(tmp_path):
    root = faces_folder(tmp_path / "faces")
    with open(root / "happy" / "huge.jpg", "wb") as f:
        f.truncate(300 * MB)  # sparse
    before = max_rss_mb()
    ds = load(root)
    assert max_rss_mb() - before < 200
    assert len(ds) == 6 and ds.skipped == [f"happy/huge.jpg: {300 * MB} bytes, more than the {64 * MB}-byte limit for one image file; skipped"]


def test_non_image_files_in_class_folders_are_named_not_read(tmp_path):
    root = faces_folder(tmp_path / "faces")
    (root / "happy" / "clip.mp4").write_bytes(b"\0" * 1000)
    ds = load(root)
    assert len(ds) == 6 and len(ds.skipped) == 1
    assert ds.skipped[0].startswith("happy/clip.mp4: not a readable image (suffix .mp4;")


# --- fer2013.csv rows --------------------------------------------------------------------------


def test_csv_rows_with_bad_bytes_or_unicode_digits_are_skipped(tmp_path):
    pixels = " ".join(["128"] * 48 * 48)
    lines = [b"emotion,pixels,Usage"]
    lines += [f"3,{pixels},Training".encode()] * 2
    lines.append(f"3,{pixels},Train\xffing".encode("latin-1"))  # row 2: a byte that is not UTF-8
    lines.append(f"\u00b2,{pixels},Training".encode())  # row 3: '²' (isdigit() but not int())
    lines.append(f"\u0663,{pixels},Training".encode())  # row 4: Arabic-Indic 3 (int() reads it as 3)
    lines.append(f"\uff13,{pixels},PublicTest".encode())  # row 5: full-width 3
    lines.append(f'"3","{pixels}","PrivateTest\0"'.encode())  # row 6: quoted, with a NUL byte
    lines.append(f"0,{pixels},PrivateTest".encode())
    path = tmp_path / "fer2013.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    ds = load(path, cache=False)
    msgs = ds.skipped
    assert len(ds) == 3 and list(ds.names) == ["row 0", "row 1", "row 7"], msgs
    assert len(msgs) == 5
    assert msgs[0].startswith("fer2013.csv row 2 (line 4): byte 0xff at column") and "not UTF-8" in msgs[0]
    assert msgs[1].startswith("fer2013.csv row 3 (line 5): unknown emotion label '²'")
    assert msgs[2].startswith("fer2013.csv row 4 (line 6): unknown emotion label '٣'")
    assert msgs[3].startswith("fer2013.csv row 5 (line 7): unknown emotion label '３'")
    assert msgs[4].startswith("fer2013.csv row 6 (line 8):")


# --- zips --------------------------------------------------------------------------------------


def _patch_sizes(path: Path, member: str, size: int) -> None:
    """Make the local and central headers of `member` declare `size` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_zip_member_declaring_2_gib_is_skipped_before_reading(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"happy/{k}.png", png_bytes(k))
        zf.writestr("happy/zeros.png", b"\0" * MB)
    _patch_sizes(path, "happy/zeros.png", 2 << 30)  # what a real 2 GiB member of zeros declares
    before = max_rss_mb()
    ds = load(path, cache=False)
    assert max_rss_mb() - before < 200
    assert len(ds) == 3 and len(ds.skipped) == 1
    assert ds.skipped[0].startswith(f"happy/zeros.png: member declares {2 << 30} bytes uncompressed")
    assert "a zip bomb?" in ds.skipped[0]


def test_zip_member_over_the_limit_is_skipped_and_total_is_bounded(tmp_path, monkeypatch):
    path = tmp_path / "zeros.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"happy/{k}.png", png_bytes(k))
        zf.writestr("happy/zeros.png", b"\0" * 200_000)  # a real bomb in miniature: 200 kB of zeros
        zf.writestr("happy/liar.png", b"\0" * 200_000)
    _patch_sizes(path, "happy/liar.png", 1000)  # declares little, inflates to more
    monkeypatch.setattr(base, "MAX_IMAGE_BYTES", 100_000)
    ds = load(path, cache=False)
    msgs = "\n".join(ds.skipped)
    assert len(ds) == 3 and len(ds.skipped) == 2, msgs
    assert "happy/zeros.png: member declares 200000 bytes uncompressed" in msgs
    assert "happy/liar.png:" in msgs  # its inflated bytes fail the CRC of what it declared
    monkeypatch.setattr(zip_archive, "MAX_TOTAL_BYTES", 10_000)
    with pytest.raises(DataError, match=r"zeros.zip: its images declare \d+ bytes uncompressed in all, more than the 10000-byte limit"):
        load(path, cache=False)


def test_truncated_zip_says_damaged(tmp_path):
    good = tmp_path / "faces.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for k in range(3):
            zf.writestr(f"happy/{k}.png", png_bytes(k))
    data = good.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])  # no suffix: known by its PK magic
    for name in ("cut.zip", "cut.bin"):
        with pytest.raises(DataError, match=rf"{name}: damaged zip file .*download it again"):
            load(tmp_path / name)


def test_unsafe_and_duplicate_member_names_are_reported(tmp_path):
    path = tmp_path / "faces.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            for k in range(2):
                zf.writestr(f"happy/{k}.png", png_bytes(k))
            zf.writestr(zipfile.ZipInfo("../happy/evil.png"), png_bytes(7))
            zf.writestr(zipfile.ZipInfo("/abs/happy/evil.png"), png_bytes(8))
            zf.writestr("happy/dup.png", png_bytes(5))  # good first copy, broken second
            zf.writestr("happy/dup.png", b"broken")
            zf.writestr("happy/late.png", b"broken")  # broken first copy, good second
            zf.writestr("happy/late.png", png_bytes(6))
    assert [i.filename for i in zipfile.ZipFile(path).infolist()][2:4] == ["../happy/evil.png", "/abs/happy/evil.png"]
    ds = load(path, cache=False)
    msgs = "\n".join(ds.skipped)
    assert sorted(ds.names) == ["happy/0.png", "happy/1.png", "happy/dup.png", "happy/late.png"], msgs
    assert "../happy/evil.png: unsafe member name" in msgs and "/abs/happy/evil.png: unsafe member name" in msgs
    assert "happy/dup.png: 2 members share this name; copy 1 is used" in msgs
    assert "happy/late.png: 2 members share this name; copy 2 is used" in msgs and "copy 1: happy/late.png: not a readable image" in msgs
    dup = ds.images[list(ds.names).index("happy/dup.png")]
    assert np.array_equal(dup, load(_single(tmp_path, "happy/dup.png", png_bytes(5)), cache=False).images[0])


def _single(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "single.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, data)
    return path


# --- the cache ---------------------------------------------------------------------------------


def test_cache_write_cleans_up_interrupted_and_stale_temp_files(tmp_path, monkeypatch):
    root = faces_folder(tmp_path / "faces")
    ds_dir = cache_dir() / "datasets"
    ds_dir.mkdir(parents=True, exist_ok=True)
    stale, fresh = ds_dir / ".dead.abc.npz.tmp", ds_dir / ".busy.abc.npz.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))

    raw = detect_reader(root).read(base.ReadOptions(), progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_cached("k" * 32, raw)
    assert not stale.exists() and fresh.exists()  # a killed writer's file goes; a live writer's stays
    assert sorted(p.name for p in ds_dir.iterdir()) == [fresh.name]  # and the interrupted write left nothing
    assert not (ds_dir / f"{'k' * 32}.npz").exists()
    monkeypatch.undo()
    assert save_cached("k" * 32, raw) is not None
    assert not list(ds_dir.glob(".k*.npz.tmp"))


@pytest.mark.parametrize(
    ("field", "bad", "why"),
    [
        ("labels", lambda a: a + 7, "labels outside 0..6"),
        ("labels", lambda a: a - 10, "labels outside 0..6"),
        ("split", lambda a: a + 5, "split outside -1..2"),
        ("labels", lambda a: a[:-1], "labels has shape"),
        ("images", lambda a: a[:, :, :-1], "images are uint8"),
    ],
)
def test_tampered_cache_entry_is_rejected_and_decoded_again(tmp_path, field, bad, why):
    root = faces_folder(tmp_path / "faces")
    good = load(root)
    (entry,) = (cache_dir() / "datasets").glob("*.npz")
    with np.load(entry, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[field] = bad(arrays[field])
    with open(entry, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match=f"ignoring unreadable dataset cache .*{why}"):
        again = load(root)
    assert np.array_equal(again.labels, good.labels) and np.array_equal(again.images, good.images)
