"""Stage: a per-image method's predictions on one shard of one or several target sets, for one
architecture (the stages of sda_core.methods.PER_IMAGE_STAGES: MEMO adapts f to each image, GDA each
image under f's guidance).

Each image is handled on its own, so the work shards and resumes like the adaptation stages: a
prediction store (sda_core.store, float16 softmax rows) written chunk by chunk, each image's random
draws from its own generator (seed, stream, index). The method's module builds what predicts a batch
(its `per_image_predictor`); this skeleton owns the covered images, the shard, the checks, the
fingerprint and the store.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

import numpy as np
import torch

from sda_core.finite import check_finite
from sda_core.image_sets import covered_images
from sda_core.methods import PER_IMAGE_STAGES, PerImagePredictor
from sda_core.rng import sample_generators, sample_seed
from sda_core.store import (
    PROBABILITIES,
    StoreSequence,
    fill_store,
    finalize_all,
    input_identities,
    open_partial,
    shard_range,
)

log = logging.getLogger(__name__)


def build_predictor(stage: str, **kwargs) -> PerImagePredictor:
    """The per-image stage's predictor, from the factory its registry entry names."""
    module, _, function = PER_IMAGE_STAGES[stage].predictor.partition(":")
    return getattr(importlib.import_module(module), function)(**kwargs)


@dataclass(frozen=True)
class TargetSet:
    """One target set of a per-image job: its input stores, its output store and its noise stream; for a
    stage that stores its adapted images (PerImageStage.stores_images), their store."""

    inputs: list[str]
    output: str
    stream: str
    images_output: str | None = None


def per_image_job(
    method: str,
    inputs: list[str],
    output: str,
    weights: dict[str, str],
    model: dict,
    num_classes: int,
    settings: dict,
    preprocess: dict,
    images: int | None,
    batch_size: int,
    shard: int,
    num_shards: int,
    stream: str,
    seed: int,
    device: torch.device,
    images_output: str | None = None,
) -> None:
    """per_image_sets_job of one target set: `inputs` into `output` (and its adapted images into
    `images_output`, for a stage that stores them), noise stream `stream`."""
    per_image_sets_job(
        method,
        [TargetSet(inputs, output, stream, images_output)],
        weights,
        model,
        num_classes,
        settings,
        preprocess,
        images,
        batch_size,
        shard,
        num_shards,
        seed,
        device,
    )


def per_image_sets_job(
    method: str,
    targets: list[TargetSet],
    weights: dict[str, str],
    model: dict,
    num_classes: int,
    settings: dict,
    preprocess: dict,
    images: int | None,
    batch_size: int,
    shard: int,
    num_shards: int,
    seed: int,
    device: torch.device,
) -> None:
    """`method` on shard `shard` of the images of each target set it covers (all, or `images` of them
    evenly spaced: sda_core.image_sets.covered_images), each image seeded by its position in its set.
    weights: the files it reads by name ("classifier": the source weights; the stage's others); model:
    the architecture's timm name and kwargs; settings: the stage's (PerImageStage.settings). The model is
    built once for all the sets; with several sets (target_jobs: grouped), their stores are renamed to
    their outputs only once all are complete, so a killed job loses none of them. A stage that stores its
    adapted images writes each chunk of them before the chunk's predictions: a chunk whose predictions
    are done has its images too, and a resumed job recomputes the others."""
    predictor = build_predictor(
        method,
        weights=weights,
        model=model,
        num_classes=num_classes,
        preprocess=preprocess,
        device=device,
        **settings,
    )
    label = method.upper()
    weight_identities = input_identities(weights.values())  # read once for all the sets
    stage = PER_IMAGE_STAGES[method]
    stream_stage = stage.stream
    if stream_stage and num_shards != 1:
        raise ValueError(f"{label} adapts over each target set's stream in order: one shard, not {num_shards}")
    if any((target.images_output is not None) != stage.stores_images for target in targets):
        needed = "is needed" if stage.stores_images else "is not made"
        raise ValueError(f"{label}: an output store of each target set's adapted images {needed}")

    def predict_target_set(target: TargetSet) -> list[tuple]:
        """One target set's shard, into `<output>.partial` (and its images' `.partial`): returned, complete,
        as (store, output) pairs, renamed below with the others'."""
        source = StoreSequence(target.inputs)
        covered = covered_images(len(source), images)
        start, stop = shard_range(len(covered), num_shards, shard, batch_size)
        stream = target.stream
        log.info(
            "%s: covered images %d..%d (%d of the set's %d), %s",
            stream,
            start,
            stop,
            len(covered),
            len(source),
            predictor.description,
        )

        def compute(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
            positions = covered[start + lo : start + hi]
            batch, labels = source.read_positions(positions)
            generators = sample_generators(seed, stream, positions)
            where = f"images {positions[0]}..{positions[-1]} (shard {shard})"
            probabilities = predictor.probabilities(batch, generators, f"{label} {stream}, {where}")
            check_finite(probabilities, f"{label} {stream}, {where}, {predictor.checked}")
            correct = int((probabilities.argmax(1).cpu().numpy() == labels).sum())
            log.info("%s: %d of %d correct%s", where, correct, hi - lo, predictor.report())
            if images_store is not None:  # before the predictions' chunk is written: see the docstring
                adapted = predictor.adapted_images()
                for chunk in range(lo // batch_size, -(-hi // batch_size)):
                    first, last = (bound - lo for bound in images_store.chunk_bounds(chunk))
                    images_store.write_chunk(chunk, adapted[first:last], labels[first:last])
            return probabilities.cpu().numpy().astype(np.float16), labels

        chunks_per_call = 1
        if stream_stage:
            compute = stream_compute(predictor, source, covered, batch_size, seed, stream, num_classes, label)
            chunks_per_call = -(-len(covered) // batch_size)  # the whole stream in one call
        fingerprint = {
            "inputs": target.inputs,
            **predictor.fingerprint,
            "input_identities": {**input_identities(target.inputs), **weight_identities},
            "range": [start, stop],
            "images": images,
            "stream": stream,
            "seed": seed,
            **({"batch_size": batch_size, "order": "seeded permutation"} if stream_stage else {}),
        }
        images_store = None
        if target.images_output is not None:
            size = predictor.image_size
            images_store = open_partial(target.images_output, stop - start, (size, size, 3), batch_size, fingerprint)
            # a chunk's predictions without its images (the images' store renamed, then deleted by a rerun)
            predictions = open_partial(
                target.output, stop - start, (num_classes,), batch_size, fingerprint, array=PROBABILITIES
            )
            predictions.mark_pending(images_store.pending_chunks())
        store = fill_store(
            target.output,
            stop - start,
            (num_classes,),
            batch_size,
            fingerprint,
            compute,
            desc=stream,
            array=PROBABILITIES,
            keep_partial=True,
            chunks_per_call=chunks_per_call,
        )
        return [(store, target.output)] + ([(images_store, target.images_output)] if images_store else [])

    # every set complete first: then the renames
    finalize_all([pair for target in targets for pair in predict_target_set(target)])


def stream_order(count: int, seed: int, stream: str) -> np.ndarray:
    """The order a stream method sees a target set's `count` covered images in: a permutation seeded by
    (seed, stream), the same for every architecture (a set stored class by class is no i.i.d. stream)."""
    return np.random.default_rng(sample_seed(seed, f"{stream}/order", 0)).permutation(count)


def stream_compute(predictor, source, covered, batch_size, seed, stream, num_classes, label):
    """compute(lo, hi) for fill_store of a stream method: the whole stream from the source state, in
    stream_order and batches of `batch_size`, every call (a batch's prediction depends on every batch
    before it, so a resumed set is recomputed whole); returns the rows of covered images lo..hi."""

    def compute(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        order = stream_order(len(covered), seed, stream)
        rows = np.empty((len(covered), num_classes), np.float16)
        labels = np.empty(len(covered), np.int64)
        predictor.reset()
        for first in range(0, len(order), batch_size):
            members = order[first : first + batch_size]
            batch, batch_labels = source.read_rows(covered[members])
            where = f"stream batch {first // batch_size} ({len(members)} images)"
            probabilities = predictor.probabilities(batch, None, f"{label} {stream}, {where}")
            check_finite(probabilities, f"{label} {stream}, {where}, {predictor.checked}")
            rows[members] = probabilities.cpu().numpy().astype(np.float16)
            labels[members] = batch_labels
        correct = int((rows.astype(np.float32).argmax(1) == labels).sum())
        log.info("%s: %d of %d correct over the stream%s", stream, correct, len(covered), predictor.report())
        return rows[lo:hi], labels[lo:hi]

    return compute
