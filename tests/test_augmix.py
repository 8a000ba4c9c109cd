"""AugMix views (sda_core.augmix): each operation against PIL, the reference's implementation; views
seeded per image and independent of the batch."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from sda_core.augmix import OPERATIONS, AugMixDraws, apply_operation, augmix_views, resized_crops


@pytest.fixture
def photo():
    """Smooth structure plus noise, 32x32 RGB uint8: something with edges for the geometric operations."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([128 + 100 * np.sin(x / 5), 128 + 100 * np.cos(y / 4), 4 * (x + y)], -1)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def _ours(name: str, image: np.ndarray, level: float, negate: bool = False) -> np.ndarray:
    out = apply_operation(name, _tensor(image), torch.tensor([level], dtype=torch.float64), torch.tensor([negate]))
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", ["autocontrast", "equalize", "posterize", "solarize"])
def test_pointwise_operations_equal_pil(photo, name):
    level = 0.7
    pil = Image.fromarray(photo)
    expected = {
        "autocontrast": lambda: ImageOps.autocontrast(pil),
        "equalize": lambda: ImageOps.equalize(pil),
        "posterize": lambda: ImageOps.posterize(pil, 4 - int(level * 4 / 10)),
        "solarize": lambda: ImageOps.solarize(pil, 256 - int(level * 256 / 10)),
    }[name]()
    np.testing.assert_array_equal(_ours(name, photo, level), np.asarray(expected))


@pytest.mark.parametrize(
    "name, data",
    [
        ("shear_x", (1, 0.03, 0, 0, 1, 0)),
        ("shear_y", (1, 0, 0, 0.03, 1, 0)),
        ("translate_x", (1, 0, 1, 0, 1, 0)),
        ("translate_y", (1, 0, 0, 0, 1, 1)),
    ],
)
def test_affine_operations_match_pil(photo, name, data):
    """PIL's Image.transform(AFFINE, bilinear, fillcolor=128 as the reference passes it) at level 1
    (translate: int(32/3/10) = 1 px)."""
    expected = np.asarray(
        Image.fromarray(photo).transform((32, 32), Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=128)
    ).astype(np.float64)
    ours = _ours(name, photo, 1.0)
    # bilinear resampling rounds differently at a few pixels; the bulk agrees to the integer
    assert np.mean(np.abs(ours - expected) <= 1) > 0.97
    assert np.abs(ours - expected).mean() < 1.0
    assert np.abs(ours - photo).mean() > 3 * np.abs(ours - expected).mean()  # the operation did something
    if name == "translate_x":  # the column it uncovers: PIL's reading of fillcolor=128, (128, 0, 0)
        np.testing.assert_array_equal(ours[:, -1], np.tile([128.0, 0.0, 0.0], (32, 1)))


def test_rotate_matches_pil(photo):
    ours = _ours("rotate", photo, 1.0)  # int(1.0 * 30 / 10) = 3 degrees
    candidates = [np.asarray(Image.fromarray(photo).rotate(a, Image.BILINEAR, fillcolor=128)) for a in (3, -3)]
    errors = [np.abs(ours - c.astype(np.float64)).mean() for c in candidates]
    assert min(errors) < 1.5 and max(errors) > 2 * min(errors)


def test_translate_of_a_small_image_is_whole_pixels_only(photo):
    """The reference's int() of level * (S / 3) / 10: an 8-pixel image is never translated."""
    small = photo[:8, :8]
    np.testing.assert_array_equal(_ours("translate_x", small, 1.0), small)


def test_resized_crop_of_the_whole_image_is_the_image(photo):
    x = _tensor(photo)[0]
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0]], dtype=torch.float64)
    np.testing.assert_allclose(resized_crops(x, box, torch.tensor([False]), 32)[0].numpy(), x.numpy(), atol=1e-3)
    flipped = resized_crops(x, box, torch.tensor([True]), 32)[0]
    np.testing.assert_allclose(flipped.numpy(), x.flip(-1).numpy(), atol=1e-3)


def test_crop_boxes_follow_random_resized_crop_limits():
    draws = AugMixDraws.draw(torch.Generator().manual_seed(0), 2000, 32, 32)
    top, left, h, w = draws.boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = h * w / 1024
    assert area.min() >= 0.06 and area.max() <= 1.0 and 0.45 < area.mean() < 0.62  # U(0.08, 1), rounded
    assert draws.weights.sum(1).allclose(torch.ones(2000, dtype=torch.float64))
    assert set(draws.depth.unique().tolist()) == {1, 2, 3}
    assert set(draws.choice.unique().tolist()) == set(range(len(OPERATIONS)))


def test_views_are_seeded_per_image_and_independent_of_the_batch(photo):
    images = (
        torch.stack([_tensor(photo)[0], _tensor(photo[::-1].copy())[0], _tensor(photo.transpose(1, 0, 2).copy())[0]])
        / 255
    )

    def generators(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    together = augmix_views(images, 8, 24, generators([5, 6, 7]))
    assert together.shape == (24, 3, 24, 24) and 0 <= together.min() and together.max() <= 1
    alone = augmix_views(images[1:2], 8, 24, generators([6]))
    torch.testing.assert_close(alone, together[8:16], rtol=0, atol=0)
    other_seed = augmix_views(images[1:2], 8, 24, generators([60]))
    assert not torch.equal(other_seed, alone)
    # views differ from each other, and from the plain resize of the image
    assert (together[8:16].flatten(1).std(0) > 0).float().mean() > 0.5
