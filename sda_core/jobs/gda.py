"""Stage: GDA's predictions on one shard of a target set, for one architecture (sda_core.gda).

GDA's guidance uses the architecture's source classifier, so each architecture has its own adapted
images; they are classified as they are made (on the unquantised x0 estimate, as GDA's code does) and
the stage writes a prediction store (sda_core.store, float16 softmax rows) chunk by chunk, each image's
noise, views and cut-outs drawn from its own generator (seed, stream, index). It shards and resumes
like the adaptation stages.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import configure_denoiser
from sda_core.finite import check_finite
from sda_core.gda import ClipStyle, GdaAdapter, GdaSettings, VggFeatures, configure_classifier, load_clip
from sda_core.image_sets import covered_images
from sda_core.images import resize, to_model_range
from sda_core.models.classifiers import Preprocess, load_classifier
from sda_core.models.denoisers import load_denoiser
from sda_core.precision import set_up_precision
from sda_core.seeding import sample_generators
from sda_core.store import PROBABILITIES, StoreSequence, fill_store, shard_range

log = logging.getLogger(__name__)


def gda_job(
    inputs: list[str],
    output: str,
    spec: dict,
    checkpoint: str,
    timm_name: str,
    timm_kwargs: dict,
    num_classes: int,
    weights: str,
    settings: GdaSettings,
    preprocess: dict,
    images: int | None,
    batch_size: int,
    shard: int,
    num_shards: int,
    stream: str,
    seed: int,
    device: torch.device,
    vgg_weights: str | None = None,
    clip_model: str | None = None,
    clip_weights: str | None = None,
    precision: str = "auto",
    compile_mode: str = "none",
) -> None:
    """GDA on shard `shard` of the images of `inputs` it covers (all, or `images` of them evenly spaced:
    sda_core.image_sets.covered_images), each seeded by its position in the set. VGG and CLIP are loaded
    where their weights in `settings` are non-zero."""
    precision = set_up_precision(precision, device)  # resolved: what the fingerprint records
    source = StoreSequence(inputs)
    covered = covered_images(len(source), images)
    start, stop = shard_range(len(covered), num_shards, shard, batch_size)
    size = spec["image_size"]
    denoiser = compile_denoiser(configure_denoiser(load_denoiser(spec, checkpoint).to(device)), compile_mode, device)
    classifier = configure_classifier(load_classifier(timm_name, num_classes, timm_kwargs, weights).to(device))
    vgg = VggFeatures(vgg_weights).to(device) if settings.vgg_weight else None
    clip = None
    if settings.clip_weight:
        clip = ClipStyle(load_clip(clip_model, clip_weights).to(device), settings.clip_prompt, settings.clip_cutouts)
    adapter = GdaAdapter(denoiser, classifier, Preprocess(**preprocess), settings, vgg, clip, precision)
    log.info(
        "%s: covered images %d..%d (%d of the set's %d), %s, %d of %d steps from t=%d, %s",
        stream,
        start,
        stop,
        len(covered),
        len(source),
        timm_name,
        settings.steps,
        settings.respacing,
        adapter.start_timestep,
        settings,
    )

    def compute(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        positions = covered[start + lo : start + hi]
        batch, labels = source.read_positions(positions)
        generators = sample_generators(seed, stream, positions)
        adapted = adapter.adapt(resize(to_model_range(batch, device), size), generators)
        where = f"images {positions[0]}..{positions[-1]} (shard {shard})"
        check_finite(adapted, f"GDA {stream}, {where}, denoiser {checkpoint}, classifier {weights}")
        probabilities = adapter.probabilities(adapted)
        check_finite(probabilities, f"GDA {stream}, {where}, classifier {weights}")
        correct = int((probabilities.argmax(1).cpu().numpy() == labels).sum())
        terms = ", ".join(f"{name} {value:.4g}" for name, value in adapter.last_terms.items())
        log.info("%s: %d of %d correct; last guided step's terms: %s", where, correct, hi - lo, terms)
        return probabilities.cpu().numpy().astype(np.float16), labels

    fingerprint = {
        "inputs": inputs,
        "spec": spec,
        "checkpoint": checkpoint,
        "model": [timm_name, timm_kwargs],
        "weights": weights,
        "settings": settings,
        "vgg": vgg_weights if settings.vgg_weight else None,
        "clip": [clip_model, clip_weights] if settings.clip_weight else None,
        "preprocess": preprocess,
        "range": [start, stop],
        "images": images,
        "stream": stream,
        "seed": seed,
        "precision": precision,
        "compile": compile_mode,
    }
    fill_store(output, stop - start, (num_classes,), batch_size, fingerprint, compute, desc=stream, array=PROBABILITIES)
