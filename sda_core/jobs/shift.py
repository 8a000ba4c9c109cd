"""Stage (digits): the held-out split under a named shift (a target set of its own, e.g. a watermark as
ImageNet-W's digits analogue), image i seeded by its index."""

from __future__ import annotations

import logging

from sda_core.data.shifts import shift_images
from sda_core.store import StoreSequence, fill_store, input_identities

log = logging.getLogger(__name__)


def shift_job(source: str, output: str, shift: str, seed: int, chunk_size: int = 256, codec: str = "zstd") -> None:
    """Every image of `source` under the named shift; image i is seeded by its index."""
    images = StoreSequence([source])

    def compute(start: int, stop: int):
        clean, labels = images.read(start, stop)
        return shift_images(clean, shift, seed, first_index=start), labels

    fingerprint = {"source": source, "input_identities": input_identities([source]), "shift": shift, "seed": seed}
    fill_store(
        output,
        len(images),
        images.image_shape,
        chunk_size,
        fingerprint,
        compute,
        desc=shift,
        codec=codec,
        labels=images.label_layout,
    )
    log.info("%s: %d images", shift, len(images))
