"""ImageNet and ImageNet-C on disk: class folders named by WordNet id, class-balanced subsets, decoding.

Published layouts (Hendrycks & Dietterich 2019; the ImageNet validation set sorted into folders):
    ImageNet-C:  <root>/<corruption>/<severity>/<wnid>/*.JPEG   (224x224, already centre-cropped)
    ImageNet:    <val_root>/<wnid>/*.JPEG                        (full-size photos)
Labels are the positions of the wnids in sorted order, the torchvision ImageFolder convention that
every ImageNet classifier's output layer follows. A folder with a different number of classes than
the configuration is an error: a missing class folder would silently shift every label after it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sda_core.seeding import sample_seed

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp", ".bmp")


class UnreadableImageError(RuntimeError):
    """An image file that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int


def class_folders(directory: str | os.PathLike, num_classes: int) -> list[str]:
    """The wnid folders of `directory`, sorted; their positions are the labels."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    # hidden and underscore folders (.ipynb_checkpoints, __MACOSX) are not classes
    wnids = sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith((".", "_"))
    )
    if len(wnids) != num_classes:
        raise ValueError(
            f"{directory} has {len(wnids)} class folders, the configuration expects {num_classes} "
            "(labels are positions in the sorted folder list, so every class must be present)"
        )
    return wnids


def list_images(
    directory: str | os.PathLike,
    num_classes: int,
    images_per_class: int | None = None,
    seed: int = 0,
    allow_uneven_classes: bool = False,
) -> list[LabelledFile]:
    """Every image of `directory`, or a class-balanced subset of `images_per_class` per class.

    Hidden files (AppleDouble `._*.JPEG` from macOS archives) are not images. Classes with different
    image counts (an extraction that stopped half-way, an empty folder) are an error unless
    `allow_uneven_classes`: the mean accuracy would silently weigh the classes differently.

    The subset of a class is a seeded random choice among its files in sorted order, keyed by the
    wnid only: every ImageNet-C corruption (same file names) gets the same images, and so does a run
    with another shard count. Files are listed class by class, sorted by name within a class.
    """
    files = []
    for label, wnid in enumerate(class_folders(directory, num_classes)):
        names = sorted(
            entry.name
            for entry in os.scandir(Path(directory) / wnid)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith(".")
        )
        if images_per_class is not None:
            if len(names) < images_per_class:
                raise ValueError(
                    f"{Path(directory) / wnid} has {len(names)} images, fewer than the "
                    f"{images_per_class} per class asked for"
                )
            rng = np.random.default_rng(sample_seed(seed, f"subset/{wnid}", 0))
            names = [names[k] for k in sorted(rng.choice(len(names), images_per_class, replace=False))]
        files += [LabelledFile(Path(directory) / wnid / name, label) for name in names]
    counts = np.bincount([f.label for f in files], minlength=num_classes)
    if counts.min() != counts.max():  # e.g. an extraction that stopped half-way
        wnids = class_folders(directory, num_classes)
        message = (
            f"{directory}: classes have {counts.min()} to {counts.max()} images ({wnids[counts.argmin()]} has "
            f"the fewest, {int((counts < counts.max()).sum())} classes fewer than {counts.max()})"
        )
        if not allow_uneven_classes:
            raise ValueError(f"{message}; complete the folder, or set imagenet.allow_uneven_classes: true")
        log.warning(message)
    return files


def folder_manifest(directory: str | os.PathLike) -> str:
    """Every file under the class folders of `directory` as "<wnid>/<name><TAB><bytes>" lines, sorted, hidden
    files and folders left out: what an import reads, so that a completed or changed folder is re-imported
    (the folder's own time stamp does not change when files are added to its class folders)."""
    directory = Path(directory)
    lines = []
    for folder in sorted(os.scandir(directory), key=lambda e: e.name):
        if folder.is_dir() and not folder.name.startswith((".", "_")):
            for entry in os.scandir(folder.path):
                if entry.is_file() and not entry.name.startswith("."):
                    lines.append(f"{folder.name}/{entry.name}\t{entry.stat().st_size}")
    return "".join(f"{line}\n" for line in sorted(lines))


def update_manifest(path: str | os.PathLike, content: str) -> bool:
    """Write `content` to `path` only if it differs (atomically), so that its time stamp marks a change."""
    path = Path(path)
    if path.is_file() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(content)
    os.replace(tmp, path)
    return True


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3); any decoding failure names the file."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"cannot read image {path}: {error}") from error


def resize_center_crop(
    image: np.ndarray, resize: int, crop: int, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> np.ndarray:
    """Resize the short side to `resize`, then take the centre `crop` x `crop` (torchvision's rules)."""
    height, width = image.shape[:2]
    short, long = sorted((height, width))
    long = int(resize * long / short)  # torchvision truncates the long side
    size = (long, resize) if width > height else (resize, long)  # PIL sizes are (width, height)
    resized = Image.fromarray(image).resize(size, resample)
    top, left = round((size[1] - crop) / 2), round((size[0] - crop) / 2)
    return np.asarray(resized.crop((left, top, left + crop, top + crop)))
