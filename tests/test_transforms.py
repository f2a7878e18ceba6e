"""Batched transforms: shapes, shared normalisation, exact geometry, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emolens.errors import DataError
from emolens.preprocessing import PreprocessConfig, normalize
from emolens.transforms import AugConfig, create_transform

NO_AUG = AugConfig(scale=(1.0, 1.0), rotate=0.0, translate=0.0, hflip=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8))


def test_eval_transform_is_the_inference_normalisation(faces: torch.Tensor) -> None:
    cfg = PreprocessConfig(input_size=44)
    out = create_transform(cfg, is_training=False)(faces)
    assert out.shape == (16, 1, 44, 44)
    torch.testing.assert_close(out, normalize(faces, cfg))


@pytest.mark.parametrize("input_size", [48, 40])
def test_train_transform_shapes_and_range(faces: torch.Tensor, input_size: int) -> None:
    cfg = PreprocessConfig(input_size=input_size)
    out = create_transform(cfg, AugConfig(), is_training=True, seed=0)(faces)
    assert out.shape == (16, 1, input_size, input_size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    lo, hi = (0 - cfg.mean) / cfg.std, (1 - cfg.mean) / cfg.std
    # Everything but erased noise stays within the normalised pixel range.
    assert ((out >= lo - 1e-5) & (out <= hi + 1e-5)).float().mean() > 0.9
    assert create_transform(cfg, AugConfig(), is_training=True)(faces[:0]).shape == (0, 1, input_size, input_size)


def test_identity_and_mirror_are_exact(faces: torch.Tensor) -> None:
    # With every random strength at zero, the one-pass warp must sample pixel centres exactly.
    cfg = PreprocessConfig()
    ident = create_transform(cfg, NO_AUG, is_training=True)(faces)
    torch.testing.assert_close(ident, normalize(faces, cfg), atol=1e-4, rtol=0)
    mirror = create_transform(cfg, dataclasses.replace(NO_AUG, hflip=1.0), is_training=True)(faces)
    torch.testing.assert_close(mirror, normalize(faces, cfg).flip(-1), atol=1e-4, rtol=0)


def test_crop_is_a_pure_shift_within_the_image() -> None:
    # On a linear ramp, bilinear sampling is exact, so each 40x40 output must be the ramp
    # shifted by an offset in [0, 8] on each axis: no zoom, rotation or flip sneaks in.
    y, x = np.mgrid[0:48, 0:48]
    ramp = torch.from_numpy((3 * x + 2 * y).astype(np.uint8)).expand(8, 48, 48)
    cfg = PreprocessConfig(input_size=40)
    out = create_transform(cfg, NO_AUG, is_training=True, seed=1)(ramp)
    values = (out[:, 0] * cfg.std + cfg.mean) * 255  # back to pixel values, (8, 40, 40)
    offset = values[:, :1, :1]
    torch.testing.assert_close(values - offset, torch.from_numpy((3 * x + 2 * y)[:40, :40]).float().expand(8, 40, 40), atol=1e-3, rtol=0)
    # offset = 3 * dx + 2 * dy with dx, dy in [0, 8]
    assert (offset >= -1e-3).all() and (offset <= 5 * 8 + 1e-3).all()
    assert offset.unique().numel() > 1  # the crops really move


def test_disabled_augmentation_equals_eval(faces: torch.Tensor) -> None:
    cfg = PreprocessConfig(input_size=44)
    out = create_transform(cfg, AugConfig(enabled=False), is_training=True)(faces)
    torch.testing.assert_close(out, normalize(faces, cfg))


def test_seeded_and_reproducible(faces: torch.Tensor) -> None:
    cfg = PreprocessConfig()
    a = create_transform(cfg, AugConfig(), is_training=True, seed=5)
    b = create_transform(cfg, AugConfig(), is_training=True, seed=5)
    first = a(faces)
    assert torch.equal(first, b(faces))
    second = a(faces)
    assert not torch.equal(first, second)  # the stream moves on between batches
    a.reseed(5)
    assert torch.equal(a(faces), first)
    assert not torch.equal(create_transform(cfg, AugConfig(), is_training=True, seed=6)(faces), first)


def test_erasing_and_photometric_change_pixels(faces: torch.Tensor) -> None:
    cfg = PreprocessConfig()
    erase = dataclasses.replace(NO_AUG, erase_prob=1.0, erase_area=(0.1, 0.1))
    out = create_transform(cfg, erase, is_training=True)(faces)
    changed = ((out - normalize(faces, cfg)).abs() > 1e-3).float().mean(dim=(1, 2, 3))
    assert ((changed > 0.05) & (changed < 0.2)).all()  # ~10% of each image erased
    photo = dataclasses.replace(NO_AUG, brightness=0.5, contrast=0.5)
    out = create_transform(cfg, photo, is_training=True)(faces)
    assert not torch.allclose(out, normalize(faces, cfg))


def test_bad_shapes_raise(faces: torch.Tensor) -> None:
    with pytest.raises(DataError, match=r"\(B, S, S\)"):
        create_transform(PreprocessConfig(), AugConfig(), is_training=True)(faces[0])


def test_transforms_sit_below_training() -> None:
    """transforms.py owns AugConfig: importing it pulls in nothing of emolens.training."""
    import subprocess
    import sys

    code = "import sys, emolens.transforms; print(sorted(m for m in sys.modules if m.startswith('emolens.training')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("stored, image_size, input_size, mean, std", [
    (48, 48, 48, 0.5, 0.25), (56, 56, 48, 0.508, 0.254), (40, 48, 44, 0.3, 0.7), (48, 48, 40, 0.5, 0.25),
])
def test_normalize_array_gives_normalize_s_numbers(stored, image_size, input_size, mean, std):
    # The exported backends' numpy path must feed their graphs exactly what the torch path feeds a network.
    from emolens.preprocessing import normalize_array

    cfg = PreprocessConfig(image_size=image_size, input_size=input_size, mean=mean, std=std)
    faces = np.random.default_rng(stored).integers(0, 256, (5, stored, stored), dtype=np.uint8)
    got = normalize_array(faces, cfg)
    assert got.dtype == np.float32 and got.shape == (5, 1, input_size, input_size)
    assert np.array_equal(got, normalize(faces, cfg).numpy())
    assert np.array_equal(normalize_array(faces[:, None], cfg), got)
    with pytest.raises(DataError, match="expected faces shaped"):
        normalize_array(faces[:, None, None], cfg)


def test_dark_faces_are_brightened_to_the_level_alike_in_both_paths():
    """A face whose brightest 1% lies under FACE_BRIGHT_LEVEL is scaled up to it (at most
    FACE_MAX_GAIN times), in the torch path (training, evaluation) and the exported backends'
    numpy path alike; a face at a normal exposure is left as it is."""
    from emolens.preprocessing import FACE_BRIGHT_LEVEL, FACE_MAX_GAIN, brighten_dark_faces, normalize_array

    rng = np.random.default_rng(3)
    bright = rng.integers(0, 256, (1, 1, 48, 48)).astype(np.float32) / 255
    dim, black = bright * 0.25, bright * 0.01  # 0.25: lifted to the level; 0.01: would need 100x, gets 8x
    faces = np.concatenate([bright, dim, black])
    lifted = brighten_dark_faces(faces)
    assert np.array_equal(lifted[0], bright[0])
    assert np.sort(lifted[1].ravel())[-23] == pytest.approx(FACE_BRIGHT_LEVEL / 255, rel=1e-5)  # the brightest 1%: 23 of 2,304
    np.testing.assert_allclose(lifted[2], black[0] * FACE_MAX_GAIN, rtol=1e-6)
    np.testing.assert_allclose(brighten_dark_faces(torch.from_numpy(faces)).numpy(), lifted, rtol=1e-5, atol=1e-6)
    cfg = PreprocessConfig()
    dark_uint8 = np.round(faces[:, 0] * 255).astype(np.uint8)
    np.testing.assert_allclose(normalize_array(dark_uint8, cfg), normalize(dark_uint8, cfg).numpy(), rtol=1e-5, atol=1e-5)


def test_one_exposure_rule_for_photos_and_faces():
    """`exposure_gains` is the one rule the detector's search (uint8 photos, `exposure_gain`) and
    the classifier's faces (floats in [0, 1], `brighten_dark_faces`) share: the same pixels give the
    same gain however they are stored, in numpy and torch, capped at `max_gain` and never under 1."""
    from emolens.preprocessing import exposure_gain, exposure_gains

    rng = np.random.default_rng(5)
    photos = (rng.integers(0, 256, (3, 64, 80)) * np.array([1.0, 0.3, 0.02])[:, None, None]).astype(np.uint8)
    brightest = np.sort(photos.reshape(3, -1), axis=1)[:, -51]  # the 1% brightest of 5,120 values: 51
    expected = np.clip(200.0 / np.maximum(brightest, 1), 1.0, 8.0)
    np.testing.assert_allclose(exposure_gains(photos, 200, 8), expected, rtol=1e-6)
    np.testing.assert_allclose(exposure_gains(photos.astype(np.float32) / 255, 200, 8), expected, rtol=1e-5)
    np.testing.assert_allclose(exposure_gains(torch.from_numpy(photos), 200, 8).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(exposure_gains(torch.from_numpy(photos).float() / 255, 200, 8).numpy(), expected, rtol=1e-5)
    assert expected[0] == 1.0 and 1.0 < expected[1] < 8.0 and expected[2] == 8.0  # bright, dim, nearly black
    assert [exposure_gain(p[..., None].repeat(3, axis=2), 200, 8) for p in photos] == pytest.approx(list(expected), rel=1e-6)
    assert exposure_gain(photos[2][..., None].repeat(3, axis=2), 200, 1.0) == 1.0  # max_gain 1: never brightened


def _photo_faces() -> np.ndarray:
    """48x48 grey pieces of real photos (scikit-image's astronaut and camera man), with the
    edges and textures that JPEG's quantisation acts on."""
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    grey = [cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY), skimage_data.camera()]
    return np.stack([cv2.resize(g[y : y + 160, x : x + 160], (48, 48), interpolation=cv2.INTER_AREA)
                     for g in grey for y in (0, 150, 300) for x in (0, 170, 340)])


@pytest.mark.parametrize("quality", [10, 30, 60])
def test_jpeg_compress_gives_what_opencvs_jpeg_gives(quality: int) -> None:
    import cv2

    from emolens.transforms import jpeg_compress

    faces = _photo_faces()
    for crop in (faces, faces[:, :45, :43]):  # sides that are not multiples of 8: the edge is repeated
        opencv = np.stack([cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(f), [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
                           for f in crop]).astype(np.float32)
        ours = jpeg_compress(torch.from_numpy(crop).float().unsqueeze(1), torch.full((len(crop),), quality)).squeeze(1).numpy()
        assert ours.shape == crop.shape
        assert np.abs(ours - opencv).mean() < 0.5  # libjpeg's integer DCT rounds a coefficient otherwise now and then
        assert np.abs(opencv - crop).mean() > 2.5  # and the compression itself is far from nothing


def test_views_whole_is_the_face_before_degradation_and_erasing(faces: torch.Tensor) -> None:
    """The teacher's view under distill.whole_teacher: the same warp and light as the trained
    face (the same draws), without what follows; asking for it changes nothing of the first."""
    cfg = PreprocessConfig()
    degraded = AugConfig(erase_prob=1.0, blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0, lowres_prob=1.0, gamma_prob=1.0)
    clean = dataclasses.replace(degraded, erase_prob=0.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, lowres_prob=0.0, gamma_prob=0.0)
    augmented, whole = create_transform(cfg, degraded, is_training=True, seed=3).views(faces)
    torch.testing.assert_close(whole, create_transform(cfg, clean, is_training=True, seed=3)(faces), atol=0, rtol=0)
    torch.testing.assert_close(augmented, create_transform(cfg, degraded, is_training=True, seed=3)(faces), atol=0, rtol=0)
    assert (augmented - whole).abs().mean() > 0.1


def test_jpeg_settings_are_checked() -> None:
    from emolens.errors import ConfigError

    for bad in ({"jpeg_prob": 1.5}, {"jpeg_quality": (0, 50)}, {"jpeg_quality": (60, 20)}, {"jpeg_quality": (50, 101)}):
        with pytest.raises(ConfigError, match=r"aug\.jpeg"):
            AugConfig(**bad)
