"""The digit-scenes world (sda_core.data.digit_scenes): seeded per scene, label maps that match the pixels."""

import numpy as np
import pytest

from sda_core.data.digit_scenes import (
    BACKGROUND,
    MAX_DIGITS,
    NUM_CLASSES,
    digit_pools,
    make_scenes,
    scale_range,
)


@pytest.fixture(scope="module")
def pools():
    return digit_pools(test_fraction=0.3, seed=0)


def test_a_scene_depends_only_on_its_seed_split_and_index(pools):
    source, _ = pools
    images, maps = make_scenes(source, 24, "source", 0, 0, 12)
    tail_images, tail_maps = make_scenes(source, 24, "source", 0, 5, 12)
    np.testing.assert_array_equal(images[5:], tail_images)
    np.testing.assert_array_equal(maps[5:], tail_maps)
    other_split = make_scenes(source, 24, "generated", 0, 0, 12)[0]
    other_seed = make_scenes(source, 24, "source", 1, 0, 12)[0]
    assert not np.array_equal(images, other_split) and not np.array_equal(images, other_seed)
    assert images.shape == (12, 24, 24, 3) and maps.shape == (12, 24, 24)
    assert images.dtype == maps.dtype == np.uint8


@pytest.mark.parametrize("size", [16, 24, 32])
def test_label_maps_hold_one_to_three_digits_over_background_and_match_the_pixels(pools, size):
    source, _ = pools
    images, maps = make_scenes(source, size, "source", 3, 0, 64)
    assert maps.max() < NUM_CLASSES
    brightness = images.astype(np.float32).mean(-1)
    counts = []
    for image, label_map in zip(brightness, maps):
        digits = set(np.unique(label_map)) - {BACKGROUND}
        assert 1 <= len(digits) <= MAX_DIGITS  # two equal digits in one scene count once here
        counts.append(len(digits))
        # digits are blended in at alpha >= 0.5 in colours >= 0.6 over a background <= 0.35 + grain
        assert image[label_map != BACKGROUND].min() > image[label_map == BACKGROUND].mean()
    assert len(set(counts)) > 1  # not always the same number of digits
    smallest, largest = scale_range(size)
    assert smallest <= largest <= size // 2


def test_source_and_target_scenes_draw_on_disjoint_digit_images(pools):
    source, target = pools
    assert len(source) + len(target) == 1797
    assert set(np.unique(source.digits)) == set(np.unique(target.digits)) == set(range(10))
    flat_source = {image.tobytes() for image in source.images}
    shared = sum(image.tobytes() in flat_source for image in target.images)
    assert shared == 0  # no digit image of a target scene appears in a source scene
