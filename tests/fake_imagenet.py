"""A tiny ImageNet made here from scikit-image's bundled photos, in the published folder layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel", "cat")


def photo(k: int) -> np.ndarray:
    """Photo k (cycling), cut to a distinct landscape or portrait shape of at most 180 px."""
    import skimage.data

    image = getattr(skimage.data, PHOTOS[k % len(PHOTOS)])()
    image = np.asarray(Image.fromarray(image).resize((150 + 7 * k, 120 + 5 * k) if k % 2 else (110, 160)))
    return image if k < len(PHOTOS) else image[:, ::-1].copy()


def wnid(label: int) -> str:
    return f"n{label:08d}"


def make_imagenet_val(root: Path, num_classes: int = 3, per_class: int = 3) -> Path:
    """<root>/<wnid>/ILSVRC2012_val_<k>.JPEG; image k of class c is photo c * per_class + k."""
    for label in range(num_classes):
        (root / wnid(label)).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            index = label * per_class + k
            Image.fromarray(photo(index)).save(root / wnid(label) / f"ILSVRC2012_val_{index:08d}.JPEG", quality=90)
    return root


def make_imagenet_c(root: Path, val_root: Path, corruptions: list[str], severity: int, seed: int = 0) -> Path:
    """<root>/<corruption>/<severity>/<wnid>/<same file names>: val prepared at 224 px, corrupted, JPEG."""
    from sda_core.data.corruptions import corrupt_images
    from sda_core.data.imagenet import read_rgb, resize_center_crop

    files = sorted(val_root.glob("*/*.JPEG"))
    clean = np.stack([resize_center_crop(read_rgb(f), 256, 224) for f in files])
    for corruption in corruptions:
        images = corrupt_images(clean, corruption, severity, seed)
        for file, image in zip(files, images):
            target = root / corruption / str(severity) / file.parent.name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target, quality=85)
    return root
