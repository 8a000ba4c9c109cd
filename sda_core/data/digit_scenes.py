"""The embedded digit-scenes world for segmentation: scikit-learn's 8x8 digits placed on a textured canvas.

Each scene holds one to three digits, at seeded random scales and non-overlapping positions, each in a
bright colour over a dark, smoothly varying background with fine grain. Its label map gives every
pixel its class: BACKGROUND (0), or 1 + the digit for the pixels where the digit's alpha (what it is
blended with) reaches COVERED. Scene i of a split is drawn from its own generator,
seeded by (seed, split, i), so a scene does not depend on how many are made or in which job. Source
and target scenes draw their digits from disjoint halves of the digit images (stratified by class).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

BACKGROUND = 0
NUM_CLASSES = 11  # background and the ten digits; read while the workflow parses (no torch import)
MAX_DIGITS = 3
# a pixel is the digit's where its alpha reaches this: a quarter, not a half, gives strokes of about 2 px
# at 24 px, which a DeepLabV3 resolves (measured: 91% against 89% target mIoU at a half, same training)
COVERED = 0.25
BACKGROUND_LEVELS = (0.05, 0.35)  # the background's grey range before its tint
DIGIT_LEVELS = (0.6, 1.0)  # each colour channel of a digit
GRAIN = 0.03  # standard deviation of the background's per-pixel grain
PLACEMENT_TRIES = 50


def digit_label(digit: int) -> int:
    """The label-map class of a digit."""
    return 1 + int(digit)


@dataclass(frozen=True)
class DigitPool:
    """Digit images (N, 8, 8) in [0, 1] and their digits (N,)."""

    images: np.ndarray
    digits: np.ndarray

    def __len__(self) -> int:
        return len(self.digits)


@functools.cache  # a sampling job asks for every chunk it draws
def digit_pools(test_fraction: float, seed: int) -> tuple[DigitPool, DigitPool]:
    """(source, target) pools: a stratified split of scikit-learn's 1,797 digits, disjoint by image
    (shared: not to be modified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return DigitPool(train_x, train_y.astype(np.int64)), DigitPool(test_x, test_y.astype(np.int64))


def scale_range(size: int) -> tuple[int, int]:
    """Smallest and largest digit side on a `size` canvas: from the native 8 px (or a third of the
    canvas) up to half of it, so that three digits fit without overlapping."""
    largest = max(size // 2, 4)
    return min(8, size // 3, largest), largest


def _resized(digit: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit at side x side, antialiased bicubic, in [0, 1]."""
    import torch

    from sda_core.pixels import resize

    return resize(torch.from_numpy(digit)[None, None], side)[0, 0].clamp(0, 1).numpy()


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dark canvas (size, size, 3): a 4x4 grid of random levels, bilinearly smoothed, a random tint, grain."""
    import torch

    coarse = torch.from_numpy(rng.uniform(*BACKGROUND_LEVELS, (1, 1, 4, 4)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0, 0]
    tint = rng.uniform(0.7, 1.0, 3).astype(np.float32)
    canvas = smooth.numpy()[..., None] * tint
    return canvas + rng.normal(0.0, GRAIN, (size, size, 3)).astype(np.float32)


def _free(box: tuple[int, int, int], boxes: list[tuple[int, int, int]]) -> bool:
    y, x, side = box
    return all(y + side <= y2 or y2 + s2 <= y or x + side <= x2 or x2 + s2 <= x for y2, x2, s2 in boxes)


def compose_scene(rng: np.random.Generator, pool: DigitPool, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (image (size, size, 3) uint8, label map (size, size) uint8)."""
    canvas = _background(rng, size)
    labels = np.full((size, size), BACKGROUND, np.uint8)
    smallest, largest = scale_range(size)
    boxes: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        for _ in range(PLACEMENT_TRIES):  # a digit that finds no free place is left out (never the first)
            side = int(rng.integers(smallest, largest + 1))
            box = (int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1)), side)
            if _free(box, boxes):
                break
        else:
            continue
        boxes.append(box)
        choice = int(rng.integers(len(pool)))
        alpha = _resized(pool.images[choice], side)[..., None]
        colour = rng.uniform(*DIGIT_LEVELS, 3).astype(np.float32)
        y, x, _ = box
        region = canvas[y : y + side, x : x + side]
        canvas[y : y + side, x : x + side] = region * (1 - alpha) + colour * alpha
        labels[y : y + side, x : x + side][alpha[..., 0] >= COVERED] = digit_label(pool.digits[choice])
    image = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    return image, labels


def make_scenes(
    pool: DigitPool, size: int, split: str, seed: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scenes [start, stop) of a split: images (N, size, size, 3) and label maps (N, size, size), uint8."""
    from sda_core.rng import sample_seed  # imports torch: not while the workflow parses

    scenes = [
        compose_scene(np.random.default_rng(sample_seed(seed, f"scenes/{split}", index)), pool, size)
        for index in range(start, stop)
    ]
    if not scenes:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.uint8)
    images, maps = zip(*scenes)
    return np.stack(images), np.stack(maps)


@dataclass(frozen=True)
class GeneratedMaps:
    """The label maps a mask-conditioned generator draws images for: `count` new scenes composed from
    the source digit images (split "generated", so none is a source scene's map), seeded per index."""

    resolution: int
    test_fraction: float
    seed: int
    count: int

    def maps(self, start: int, stop: int) -> np.ndarray:
        source, _ = digit_pools(self.test_fraction, self.seed)
        return make_scenes(source, self.resolution, "generated", self.seed, start, stop)[1]
