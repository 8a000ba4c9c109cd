"""Named distribution shifts of the digits world beyond the corruptions, made here and seeded per image.

- watermark: the digits analogue of ImageNet-W (Li et al., CVPR 2023), which overlays a translucent
  text watermark on ImageNet val. Here a fixed two-letter mark ("WM", a 5 x 11 bitmap) is scaled to
  `WATERMARK_HEIGHT` of the image height and blended at opacity `WATERMARK_OPACITY`, in white, at a
  position drawn per image from (seed, "shift/watermark", index).
"""

from __future__ import annotations

import numpy as np

from sda_core.rng import sample_seed

WATERMARK_GLYPH = (
    "#...#.#...#",
    "#...#.##.##",
    "#.#.#.#.#.#",
    "##.##.#...#",
    "#...#.#...#",
)
WATERMARK_HEIGHT = 0.45  # of the image height; the width follows the glyph's aspect
WATERMARK_OPACITY = 0.6
WATERMARK_VALUE = 255.0
SHIFTS = ("watermark",)


def check_shift(name: str) -> str:
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; valid: {', '.join(SHIFTS)}")
    return name


def watermark_mask(height: int, width: int) -> np.ndarray:
    """The glyph as an opacity mask in [0, 1], about WATERMARK_HEIGHT of `height` tall (antialiased)."""
    import torch

    from sda_core.pixels import resize

    glyph = torch.tensor([[c == "#" for c in row] for row in WATERMARK_GLYPH], dtype=torch.float32)
    mask_height = max(2, round(WATERMARK_HEIGHT * height))
    mask_width = min(width, max(2, round(mask_height * glyph.shape[1] / glyph.shape[0])))
    return resize(glyph[None, None], (mask_height, mask_width))[0, 0].clamp(0, 1).numpy()


def shift_images(images: np.ndarray, name: str, seed: int, first_index: int = 0) -> np.ndarray:
    """Apply shift `name` to uint8 (N, H, W, C) images; image k is seeded by (seed, name, first_index + k)."""
    check_shift(name)
    height, width = images.shape[1:3]
    mask = watermark_mask(height, width)
    out = images.astype(np.float64)
    for k in range(len(images)):
        rng = np.random.default_rng(sample_seed(seed, f"shift/{name}", first_index + k))
        top = int(rng.integers(0, height - mask.shape[0] + 1))
        left = int(rng.integers(0, width - mask.shape[1] + 1))
        alpha = WATERMARK_OPACITY * mask[:, :, None]
        window = out[k, top : top + mask.shape[0], left : left + mask.shape[1]]
        window[:] = (1 - alpha) * window + alpha * WATERMARK_VALUE
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
