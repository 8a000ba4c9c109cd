"""The embedded digits world: scikit-learn's bundled 8x8 digits, upscaled to RGB at a working size."""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 10  # read by the workflow while it parses: this module imports torch only when it loads data


def load_digits_split(
    resolution: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train images, train labels, test images, test labels), uint8 (N, R, R, 3).

    The 0..16 grey levels are scaled to [0, 1], resized with antialiased bicubic interpolation and
    copied to three channels, so every ImageNet-shaped component applies unchanged.
    """
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sda_core.pixels import resize

    digits = load_digits()
    grey = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    upscaled = resize(grey, resolution).clamp(0, 1)
    images = (upscaled * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return train_x, train_y, test_x, test_y
