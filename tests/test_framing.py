"""Crop geometry measured per detector, recorded in the model config and used by the pipeline;
and the degradation augmentations that train for photos and video."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emolens.errors import ConfigError
from emolens.faces import create_detector
from emolens.faces.framing import box_geometry, measure_framing
from emolens.preprocessing import Framing, PreprocessConfig, crop_face, to_gray
from emolens.training.config import AugConfig
from emolens.transforms import create_transform, gaussian_blur

pytest.importorskip("skimage")
from skimage import data as skdata

ASTRONAUT_FACE = (177, 66, 95, 95)  # Haar's box on scikit-image's astronaut photo


def test_crop_face_follows_the_framing():
    img = np.arange(200 * 200, dtype=np.uint32).reshape(200, 200) % 251
    img = img.astype(np.uint8)
    box = (50, 60, 40, 40)
    exact = crop_face(img, box, Framing(scale=1.0), 40)
    np.testing.assert_array_equal(exact, img[60:100, 50:90])
    np.testing.assert_array_equal(crop_face(img, box, 0.25, 60), crop_face(img, box, Framing(scale=1.5), 60))  # a margin is a centred scale
    lower = crop_face(img, box, Framing(scale=1.0, dy=0.25), 40)  # a quarter of the box lower
    np.testing.assert_array_equal(lower, img[70:110, 50:90])


def test_box_geometry_inverts_the_crop():
    scale, dx, dy = box_geometry((10, 20, 50, 50), (0, 20, 70, 70))
    assert scale == pytest.approx(1.4) and dx == pytest.approx(0.0) and dy == pytest.approx(0.2)


def test_framing_in_the_config_is_validated_and_used():
    p = PreprocessConfig(framing={"haar": (1.05, 0.0, 0.02)})
    assert p.framing_for("haar") == Framing(1.05, 0.0, 0.02)
    assert p.framing_for("mediapipe") == Framing(scale=1.0 + 2 * p.face_margin)  # unmeasured: the margin
    loaded = PreprocessConfig.validated(dataclasses.asdict(p) | {"framing": {"haar": [1.05, 0.0, 0.02]}})  # as JSON gives it back
    assert loaded == p
    for bad, msg in (
        ({"haar": [1.0, 0.0]}, r"framing.haar: expected \[scale, dx, dy\]"),
        ({"haar": [9.0, 0.0, 0.0]}, r"framing.haar.scale: expected a finite number in \[0.5, 3.0\]"),
        ({"haar": [1.0, float("nan"), 0.0]}, r"framing.haar.dx"),
        ({"": [1.0, 0.0, 0.0]}, "detector names"),
        ([1.0], "expected an object"),
    ):
        with pytest.raises(ConfigError, match=msg):
            PreprocessConfig.validated({"framing": bad})


def test_measure_framing_recovers_a_known_crop():
    """Crops cut from a real photo 1.3x the Haar box and 0.1 box lower: Haar's box on those crops
    sits where the measurement says, so the median geometry gives the cut back."""
    gray = to_gray(skdata.astronaut())
    known = Framing(scale=1.3, dy=0.1)
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(12):
        jitter = rng.integers(-2, 3, 2)
        box = (ASTRONAUT_FACE[0] + jitter[0], ASTRONAUT_FACE[1] + jitter[1], *ASTRONAUT_FACE[2:])
        crops.append(crop_face(gray, box, known, 48))
    m = measure_framing(create_detector("haar", min_face_size=40), np.stack(crops))
    assert m.found >= 10
    assert m.framing.scale == pytest.approx(1.3, abs=0.12)
    assert m.framing.dy == pytest.approx(0.1, abs=0.06) and abs(m.framing.dx) < 0.06


def test_degradations_are_seeded_and_do_what_they_say():
    faces = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8))
    pre = PreprocessConfig()
    plain = AugConfig(scale=(1.0, 1.0), rotate=0.0, translate=0.0, hflip=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)
    base = create_transform(pre, plain, True, seed=3)(faces)
    for name in ("gamma_prob", "blur_prob", "lowres_prob", "noise_prob"):
        aug = dataclasses.replace(plain, **{name: 1.0})
        a = create_transform(pre, aug, True, seed=3)(faces)
        b = create_transform(pre, aug, True, seed=3)(faces)
        torch.testing.assert_close(a, b)  # same seed, same faces
        assert not torch.allclose(a, base), name
    # Blur and low resolution take away fine detail: neighbouring pixels become alike.
    for name in ("blur_prob", "lowres_prob"):
        x = create_transform(pre, dataclasses.replace(plain, **{name: 1.0}), True, seed=3)(faces)
        assert (x[..., 1:] - x[..., :-1]).abs().mean() < 0.6 * (base[..., 1:] - base[..., :-1]).abs().mean(), name
    flat = torch.full((2, 1, 20, 20), 77.0)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([0.5, 1.5])), flat)
    with pytest.raises(ConfigError, match=r"aug\.lowres_size"):
        AugConfig(lowres_size=(40, 20))
