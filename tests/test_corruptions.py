import numpy as np
import pytest

from sda_core.data.corruptions import ALL_CORRUPTIONS, corrupt_images
from sda_core.data.digits import load_digits_split


@pytest.fixture(scope="module")
def digits():
    train_x, train_y, test_x, test_y = load_digits_split(16, 0.4, 0)
    return test_x[:6]


def test_digits_split_is_stratified_rgb_and_deterministic():
    a = load_digits_split(16, 0.4, 0)
    b = load_digits_split(16, 0.4, 0)
    assert a[0].shape[1:] == (16, 16, 3) and a[0].dtype == np.uint8
    assert np.array_equal(a[2], b[2])
    assert len(a[0]) + len(a[2]) == 1797
    assert np.bincount(a[3]).min() >= 70  # each class held out in proportion


@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur", "impulse_noise", "frost"])
def test_corruption_is_seeded_per_image_index(digits, name):
    whole = corrupt_images(digits, name, 5, seed=0)
    tail = corrupt_images(digits[3:], name, 5, seed=0, first_index=3)
    np.testing.assert_array_equal(whole[3:], tail)
    assert not np.array_equal(whole, corrupt_images(digits, name, 5, seed=1))


def test_all_nineteen_corruptions_run_at_16_px(digits):
    for name in ALL_CORRUPTIONS:
        out = corrupt_images(digits[:2], name, 5, seed=0)
        assert out.shape == digits[:2].shape and out.dtype == np.uint8


def test_unknown_corruption_lists_the_valid_ones(digits):
    with pytest.raises(ValueError, match="gaussian_noise.*saturate"):
        corrupt_images(digits, "gausian_noise", 5, seed=0)


def test_watermark_shift_is_seeded_per_image_and_changes_only_its_window():
    from sda_core.data.shifts import shift_images, watermark_mask

    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (6, 16, 16, 3), dtype=np.uint8)
    shifted = shift_images(images, "watermark", seed=1)
    np.testing.assert_array_equal(shift_images(images[3:], "watermark", seed=1, first_index=3), shifted[3:])
    assert not np.array_equal(shift_images(images, "watermark", seed=2), shifted)
    mask = watermark_mask(16, 16)
    assert mask.shape == (7, 15) and mask.max() > 0.9
    changed = (shifted != images).any(-1)
    assert all(1 <= changed[k].sum() <= mask.size for k in range(6))  # only inside the mark's window
    assert (shifted >= images).all()  # a white mark only brightens
    with pytest.raises(ValueError, match="unknown shift"):
        shift_images(images, "blur", seed=0)
