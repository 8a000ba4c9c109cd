"""Stage: class-conditional generation of the synthetic source set, one shard of sample indices."""
from __future__ import annotations

import logging

import numpy as np
import torch

from sda_core.diffusion.adapt import configure_denoiser, generate
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.images import from_model_range
from sda_core.models.denoisers import load_denoiser
from sda_core.seeding import sample_generators
from sda_core.store import fill_store, shard_range

log = logging.getLogger(__name__)


def sample_labels(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """The conditioning label of each global sample index: classes interleaved, so any shard is balanced."""
    return (indices % num_classes).astype(np.int64)


def sample_shard(output: str, spec: dict, checkpoint: str, num_classes: int, images_per_class: int,
                 respacing: int, batch_size: int, shard: int, num_shards: int, seed: int,
                 device: torch.device, precision: str = "fp32") -> None:
    if spec["in_channels"] != 3:
        raise NotImplementedError("sampling a latent-space generator needs its VAE decoder; this workflow "
                                  "samples pixel-space generators only so far")
    size = spec.get("sample_size") or spec["image_size"]
    total = num_classes * images_per_class
    start, stop = shard_range(total, num_shards, shard, batch_size)
    model = configure_denoiser(load_denoiser(spec, checkpoint).to(device))
    schedule = DiffusionSchedule(respacing=respacing)

    def compute(lo: int, hi: int):
        indices = np.arange(start + lo, start + hi)
        labels = sample_labels(indices, num_classes)
        x = generate(model, schedule, torch.from_numpy(labels).to(device), (3, size, size),
                     sample_generators(seed, "sample", indices), precision=precision)
        return from_model_range(x), labels

    fingerprint = {"spec": spec, "checkpoint": checkpoint, "images_per_class": images_per_class,
                   "respacing": respacing, "range": [start, stop], "seed": seed, "precision": precision}
    fill_store(output, stop - start, (size, size, 3), batch_size, fingerprint, compute, desc=f"sample {shard}")
    log.info("shard %d/%d: samples %d..%d", shard, num_shards, start, stop)
