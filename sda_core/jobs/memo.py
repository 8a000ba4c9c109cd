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
from sda_core.images import to_unit
from sda_core.memo import MemoAdapter, MemoSettings, configure_model
from sda_core.models.classifiers import Preprocess, load_classifier
from sda_core.seeding import sample_generators
from sda_core.store import PROBABILITIES, StoreSequence, fill_store, shard_range

log = logging.getLogger(__name__)


def memo_images(num_images: int, limit: int | None) -> int:
    """How many images of a target set MEMO predicts: the first `limit` (memo.images), else all."""
    return num_images if limit is None else min(num_images, limit)


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
    """MEMO on images [start, stop) of shard `shard` of the first `images` images of `inputs`."""
    source = StoreSequence(inputs)
    start, stop = shard_range(memo_images(len(source), images), num_shards, shard, batch_size)
    model = configure_model(load_classifier(timm_name, num_classes, timm_kwargs, weights).to(device), settings.prior)
    adapter = MemoAdapter(model, settings, Preprocess(**preprocess))
    log.info("%s: images %d..%d of %d, %s, %s", stream, start, stop, len(source), timm_name, settings)

    def compute(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        batch, labels = source.read(start + lo, start + hi)
        generators = sample_generators(seed, stream, range(start + lo, start + hi))
        probabilities = adapter.probabilities(to_unit(batch, device), generators)
        check_finite(probabilities, f"MEMO {stream}, images {start + lo}..{start + hi} (shard {shard}), {weights}")
        correct = int((probabilities.argmax(1).cpu().numpy() == labels).sum())
        log.info("images %d..%d: %d of %d correct", start + lo, start + hi, correct, hi - lo)
        return probabilities.cpu().numpy().astype(np.float16), labels

    fingerprint = {
        "inputs": inputs,
        "model": [timm_name, timm_kwargs],
        "weights": weights,
        "settings": settings,
        "preprocess": preprocess,
        "range": [start, stop],
        "stream": stream,
        "seed": seed,
    }
    fill_store(output, stop - start, (num_classes,), batch_size, fingerprint, compute, desc=stream, array=PROBABILITIES)
