"""ImageNet-C corruptions (Hendrycks & Dietterich 2019) applied reproducibly, one seed per image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sda_core.rng import sample_seed

TEST_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
VALIDATION_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = TEST_CORRUPTIONS + VALIDATION_CORRUPTIONS
# these two draw from their own generators and take a seed argument; the rest use numpy's global state
_SEED_ARGUMENT = ("impulse_noise", "glass_blur")


def check_corruption(name: str) -> str:
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(ALL_CORRUPTIONS)}")
    return name


def corrupt_images(images: np.ndarray, name: str, severity: int, seed: int, first_index: int = 0) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images; image k is seeded by (seed, name, severity, first_index + k).

    Calls the package's corruption functions directly: its `corrupt()` wrapper refuses images under
    32 px, and only the functions themselves can be seeded for all 19 corruptions.
    """
    from imagecorruptions import corruption_dict

    check_corruption(name)
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be in 1..5, got {severity}")
    function = corruption_dict[name]
    out = np.empty_like(images)
    for k, image in enumerate(images):
        seed_k = sample_seed(seed, f"corrupt/{name}/{severity}", first_index + k) % 2**32
        np.random.seed(seed_k)
        kwargs = {"seed": seed_k} if name in _SEED_ARGUMENT else {}
        corrupted = np.asarray(function(Image.fromarray(image), severity, **kwargs), dtype=np.float64)
        out[k] = np.clip(corrupted, 0, 255).astype(np.uint8).reshape(image.shape)
    return out
