"""Stage: the digit-scenes world's source (train) and target (test) scenes, images with label maps."""

from __future__ import annotations

import logging

from sda_core.data.digit_scenes import digit_pools, make_scenes
from sda_core.store import write_store
from sda_core.worlds import task_of

log = logging.getLogger(__name__)


def prepare_digit_scenes_job(
    train_output: str,
    test_output: str,
    resolution: int,
    test_fraction: float,
    train_scenes: int,
    test_scenes: int,
    seed: int,
    chunk_size: int = 256,
) -> None:
    """Source scenes from one half of the digit images, target scenes from the other (sda_core.data.digit_scenes)."""
    source, target = digit_pools(test_fraction, seed)
    fingerprint = {"resolution": resolution, "test_fraction": test_fraction, "seed": seed}
    for output, pool, split, count in (
        (train_output, source, "train", train_scenes),
        (test_output, target, "test", test_scenes),
    ):
        images, maps = make_scenes(pool, resolution, split, seed, 0, count)
        layout = task_of("digit_scenes").label_layout(resolution)
        write_store(output, images, maps, chunk_size, {**fingerprint, "split": split, "scenes": count}, layout=layout)
    log.info("digit scenes at %dpx: %d source, %d target scenes", resolution, train_scenes, test_scenes)
