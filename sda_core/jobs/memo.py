"""Stage: MEMO's predictions on one shard of a target set, for one architecture (sda_core.memo).

Each image is adapted from the source weights on its own, so the work shards and resumes like the
adaptation stages: a prediction store (sda_core.store, float16 softmax rows) written chunk by chunk,
each image's AugMix views drawn from its own generator (seed, stream, index).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from sda_core.finite import check_finite
from sda_core.image_sets import covered_images
from sda_core.images import to_unit
from sda_core.memo import MemoAdapter, MemoSettings, configure_model
from sda_core.models.classifiers import Preprocess, load_classifier
from sda_core.seeding import sample_generators
from sda_core.store import PROBABILITIES, StoreSequence, fill_store, shard_range

log = logging.getLogger(__name__)


def memo_job(
    inputs: list[str],
    output: str,
    timm_name: str,
    timm_kwargs: dict,
    num_classes: int,
    weights: str,
    settings: MemoSettings,
    preprocess: dict,
    images: int | None,
    batch_size: int,
    shard: int,
    num_shards: int,
    stream: str,
    seed: int,
    device: torch.device,
) -> None:
    """MEMO on shard `shard` of the images of `inputs` it covers (all, or `images` of them evenly spaced:
    sda_core.image_sets.covered_images), each seeded by its position in the set."""
    source = StoreSequence(inputs)
    covered = covered_images(len(source), images)
    start, stop = shard_range(len(covered), num_shards, shard, batch_size)
    model = configure_model(load_classifier(timm_name, num_classes, timm_kwargs, weights).to(device), settings.prior)
    adapter = MemoAdapter(model, settings, Preprocess(**preprocess))
    log.info(
        "%s: covered images %d..%d (%d of the set's %d), %s, %s",
        stream,
        start,
        stop,
        len(covered),
        len(source),
        timm_name,
        settings,
    )

    def compute(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        positions = covered[start + lo : start + hi]
        batch, labels = source.read_positions(positions)
        generators = sample_generators(seed, stream, positions)
        probabilities = adapter.probabilities(to_unit(batch, device), generators)
        where = f"images {positions[0]}..{positions[-1]} (shard {shard})"
        check_finite(probabilities, f"MEMO {stream}, {where}, {weights}")
        correct = int((probabilities.argmax(1).cpu().numpy() == labels).sum())
        log.info("%s: %d of %d correct", where, correct, hi - lo)
        return probabilities.cpu().numpy().astype(np.float16), labels

    fingerprint = {
        "inputs": inputs,
        "model": [timm_name, timm_kwargs],
        "weights": weights,
        "settings": settings,
        "preprocess": preprocess,
        "range": [start, stop],
        "images": images,
        "stream": stream,
        "seed": seed,
    }
    fill_store(output, stop - start, (num_classes,), batch_size, fingerprint, compute, desc=stream, array=PROBABILITIES)
