"""Stage: the digit-scenes world's source (train) and target (test) scenes, images with label maps."""

from __future__ import annotations

import logging

from sda_core.data.digit_scenes import digit_pools, make_scenes
from sda_core.store import write_store
from sda_core.worlds import task_of

log = logging.getLogger(__name__)


def prepare_digit_scenes_job(
    output: str,
    split: str,
    resolution: int,
    test_fraction: float,
    count: int,
    seed: int,
    chunk_size: int = 256,
) -> None:
    """`count` scenes of one split: the source (train) scenes from one half of the digit images, the
    target (test) scenes from the other (sda_core.data.digit_scenes), scene k seeded by (seed, split, k)."""
    source, target = digit_pools(test_fraction, seed)
    pool = {"train": source, "test": target}[split]
    images, maps = make_scenes(pool, resolution, split, seed, 0, count)
    fingerprint = {"resolution": resolution, "test_fraction": test_fraction, "seed": seed}
    layout = task_of("digit_scenes").label_layout(resolution)
    write_store(output, images, maps, chunk_size, {**fingerprint, "split": split, "scenes": count}, layout=layout)
    log.info("digit scenes at %dpx: %d %s scenes", resolution, count, split)
