"""Stage: corrupted copies of the held-out split (digits-C), one store per corruption; a job makes one
corruption, or all of them (target_jobs: grouped)."""

from __future__ import annotations

import logging

from sda_core.data.corruptions import corrupt_images
from sda_core.store import StoreSequence, fill_store, finalize_all, input_identities

log = logging.getLogger(__name__)


def corrupt_job(
    source: str,
    outputs: list[str],
    corruptions: list[str],
    severity: int,
    seed: int,
    limits: list[int | None],
    chunk_size: int = 256,
    codec: str = "zstd",
) -> None:
    """For each corruption, corrupt the first `limit` images of `source` (all when None) into its output;
    image i is seeded by its index. The stores are renamed to their outputs once all are complete, so a
    killed job loses none of them."""
    images = StoreSequence([source])
    identities = input_identities([source])
    stores = []
    for output, corruption, limit in zip(outputs, corruptions, limits, strict=True):
        count = len(images) if limit is None else min(limit, len(images))

        def compute(start: int, stop: int, corruption=corruption):
            clean, labels = images.read(start, stop)
            return corrupt_images(clean, corruption, severity, seed, first_index=start), labels

        store = fill_store(
            output,
            count,
            images.image_shape,
            chunk_size,
            {
                "source": source,
                "input_identities": identities,
                "corruption": corruption,
                "severity": severity,
                "seed": seed,
                "limit": limit,
            },
            compute,
            desc=corruption,
            codec=codec,
            labels=images.label_layout,
            keep_partial=True,
        )
        stores.append((store, output))
        log.info("%s severity %d: %d images", corruption, severity, count)
    finalize_all(stores)
