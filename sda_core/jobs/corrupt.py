"""Stage: a corrupted copy of the held-out split (digits-C), one job and store per corruption."""

from __future__ import annotations

import logging

from sda_core.data.corruptions import corrupt_images
from sda_core.store import StoreSequence, fill_store

log = logging.getLogger(__name__)


def corrupt_job(
    source: str,
    output: str,
    corruption: str,
    severity: int,
    seed: int,
    limit: int | None = None,
    chunk_size: int = 256,
    codec: str = "zstd",
) -> None:
    """Corrupt the first `limit` images of `source` (all when None); image i is seeded by its index."""
    images = StoreSequence([source])
    count = len(images) if limit is None else min(limit, len(images))

    def compute(start: int, stop: int):
        clean, labels = images.read(start, stop)
        return corrupt_images(clean, corruption, severity, seed, first_index=start), labels

    fill_store(
        output,
        count,
        images.image_shape,
        chunk_size,
        {"source": source, "corruption": corruption, "severity": severity, "seed": seed, "limit": limit},
        compute,
        desc=corruption,
        codec=codec,
        labels=images.label_layout,
    )
    log.info("%s severity %d: %d images", corruption, severity, count)
