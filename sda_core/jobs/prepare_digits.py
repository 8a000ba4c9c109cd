"""Stage: the digits world's clean source (train) and held-out (test) splits as image stores."""

from __future__ import annotations

import logging

from sda_core.data.digits import load_digits_split
from sda_core.store import write_store

log = logging.getLogger(__name__)


def prepare_digits_job(train_output: str, test_output: str, resolution: int, test_fraction: float, seed: int) -> None:
    train_x, train_y, test_x, test_y = load_digits_split(resolution, test_fraction, seed)
    fingerprint = {"resolution": resolution, "test_fraction": test_fraction, "seed": seed}
    write_store(train_output, train_x, train_y, chunk_size=512, fingerprint={**fingerprint, "split": "train"})
    write_store(test_output, test_x, test_y, chunk_size=512, fingerprint={**fingerprint, "split": "test"})
    log.info("digits at %dpx: %d train, %d test images", resolution, len(train_x), len(test_x))
