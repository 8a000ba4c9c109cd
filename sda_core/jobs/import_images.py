"""Stage: an image folder on disk (ImageNet-C, or ImageNet val corrupted here) into an image store.

Each image becomes what the diffusion model takes: ImageNet-C's 224 px images are resized to the
model's size (bicubic, docs/method.md#reference-settings). From ImageNet val, an image is first prepared the way
ImageNet-C was made (resize 256 bilinear, centre crop 224), then corrupted with the same seeded
corruption functions as the digits world; the published ImageNet-C additionally went through JPEG
compression, which this path does not repeat.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from sda_core.data.corruptions import corrupt_images
from sda_core.data.imagenet import (
    LabelledFile,
    UnreadableImageError,
    list_images,
    paired_images,
    read_rgb,
    read_subset_file,
    resize_center_crop,
)
from sda_core.store import fill_store

log = logging.getLogger(__name__)

# How ImageNet-C was cut from ImageNet val (Hendrycks' make_imagenet_c: Resize(256), CenterCrop(224)).
IMAGENET_C_RESIZE, IMAGENET_C_CROP = 256, 224


def readable_files(files: list[LabelledFile]) -> tuple[list[LabelledFile], list[str]]:
    """Split `files` into those that decode and the paths of those that do not (each one logged)."""
    kept, skipped = [], []
    for item in files:
        try:
            read_rgb(item.path)
            kept.append(item)
        except UnreadableImageError as error:
            log.warning("skipping: %s", error)
            skipped.append(str(item.path))
    return kept, skipped


@dataclass(frozen=True)
class Preparation:
    """How one file becomes a stored image (picklable: it runs in worker processes)."""

    size: int
    from_imagenet_val: bool
    corruption: str | None
    severity: int
    seed: int

    def __call__(self, index: int, path: Path) -> np.ndarray:
        image = read_rgb(path)
        if self.from_imagenet_val:
            image = resize_center_crop(image, IMAGENET_C_RESIZE, IMAGENET_C_CROP, resample=Image.Resampling.BILINEAR)
            if self.corruption is not None:
                image = corrupt_images(image[None], self.corruption, self.severity, self.seed, first_index=index)[0]
        return resize_center_crop(image, self.size, self.size)


def import_images_job(
    output: str,
    directory: str,
    num_classes: int,
    size: int,
    images_per_class: int | None = None,
    from_imagenet_val: bool = False,
    corruption: str | None = None,
    severity: int = 5,
    skip_unreadable: bool = False,
    allow_uneven_classes: bool = False,
    subset_file: str | None = None,
    adapted_directory: str | None = None,
    seed: int = 0,
    chunk_size: int = 256,
    codec: str = "zstd",
    workers: int = 1,
) -> None:
    """Write the images of `directory` (<wnid>/<file> folders) as `size` x `size` RGB with their labels.

    from_imagenet_val: prepare each photo as ImageNet-C was prepared, and apply `corruption` (None: the
    clean set); image k of the (subset) list is seeded by its index k, so `workers` processes (some
    corruptions take a second per image) give the same images as one. An unreadable file stops the
    job with an error naming it (finished chunks are kept), unless skip_unreadable, which first
    decodes every file, logs and leaves out the failures, and records them in the store's fingerprint.
    subset_file: import only the images it lists (sda_core.data.imagenet.read_subset_file).
    adapted_directory: import, in place of each selected image of `directory`, its adapted copy there
    (same <wnid>/<stem>; pre-adapted sets such as a released DDA ImageNet-C), in the same order.
    """
    if corruption is not None and not from_imagenet_val:
        raise ValueError("ImageNet-C is read as published; corruptions are applied only to ImageNet val")
    subset = read_subset_file(subset_file) if subset_file is not None else None
    files = list_images(directory, num_classes, images_per_class, seed, allow_uneven_classes, subset)
    if adapted_directory is not None:
        if from_imagenet_val:
            raise ValueError("pre-adapted images pair with a published set, not with ImageNet val prepared here")
        files = paired_images(files, directory, adapted_directory, num_classes)
    skipped = []
    if skip_unreadable:
        files, skipped = readable_files(files)
    log.info(
        "%s: %d images in %d classes%s",
        directory,
        len(files),
        num_classes,
        f", {len(skipped)} unreadable files skipped" if skipped else "",
    )
    prepare = Preparation(size, from_imagenet_val, corruption, severity, seed)
    fingerprint = {
        "directory": directory,
        "images_per_class": images_per_class,
        "subset": subset,
        "adapted_directory": adapted_directory,
        "size": size,
        "from_imagenet_val": from_imagenet_val,
        "corruption": corruption,
        "severity": severity,
        "seed": seed,
        "skipped_files": skipped,
    }
    # forkserver: this process already runs threads (zarr's I/O loop, torch), which fork would copy half-way
    with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) if workers > 1 else nullcontext() as pool:
        run = pool.map if pool is not None else map

        def compute(start: int, stop: int):
            images = np.stack(list(run(prepare, range(start, stop), [f.path for f in files[start:stop]])))
            return images, np.array([f.label for f in files[start:stop]], dtype=np.int64)

        fill_store(
            output,
            len(files),
            (size, size, 3),
            chunk_size,
            fingerprint,
            compute,
            desc=corruption or "images",
            codec=codec,
        )
