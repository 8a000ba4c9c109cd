"""Stage: diffusion-driven adaptation of one shard of an image set (DDA, MoD, DiffPure, unguided)."""
from __future__ import annotations

import logging

import numpy as np
import torch

from sda_core.diffusion.adapt import configure_denoiser, renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.images import from_model_range, resize, to_model_range
from sda_core.models.denoisers import load_denoiser
from sda_core.seeding import sample_generators
from sda_core.store import StoreSequence, fill_store, shard_range

log = logging.getLogger(__name__)


def steps_for_timestep(schedule: DiffusionSchedule, t: int) -> int:
    """Denoising steps that start at the kept timestep nearest to t (DiffPure's t* in respaced terms)."""
    return int(np.argmin([abs(kept - t) for kept in schedule.timesteps])) + 1


def adapt_shard(inputs: list[str], output: str, spec: dict, checkpoint: str, respacing: int, steps: int | None,
                noise_index: str, guidance: dict | None, batch_size: int, shard: int, num_shards: int,
                stream: str, seed: int, device: torch.device, precision: str = "fp32",
                t: int | None = None, codec: str = "zstd") -> None:
    """Re-noise and denoise images [start, stop) of the concatenated `inputs`, written at the model's size.

    Give `steps` (start index N) or `t` (start at the kept timestep nearest to t, noise matched to it).
    guidance=None or scale 0 is the plain reverse process. Noise is seeded per (seed, stream, index).
    """
    source = StoreSequence(inputs)
    start, stop = shard_range(len(source), num_shards, shard, batch_size)
    schedule = DiffusionSchedule(respacing=respacing)
    if (steps is None) == (t is None):
        raise ValueError("give exactly one of steps and t")
    if t is not None:
        steps, noise_index = steps_for_timestep(schedule, t), "matched"
    low_pass = LowPassGuidance(**guidance) if guidance else None
    size = spec["image_size"]
    model = configure_denoiser(load_denoiser(spec, checkpoint).to(device))
    log.info("%s: images %d..%d of %d, respacing %d, %d steps from t=%d, guidance %s", stream, start, stop,
             len(source), respacing, steps, schedule.timesteps[steps if noise_index == "reference" else steps - 1],
             low_pass)

    def compute(lo: int, hi: int):
        images, labels = source.read(start + lo, start + hi)
        x = resize(to_model_range(images, device), size)
        generators = sample_generators(seed, stream, range(start + lo, start + hi))
        adapted = renoise_denoise(model, schedule, x, steps, generators, guidance=low_pass,
                                  noise_index=noise_index, precision=precision)
        return from_model_range(adapted), labels

    fingerprint = {"inputs": inputs, "spec": spec, "checkpoint": checkpoint, "respacing": respacing,
                   "steps": steps, "noise_index": noise_index, "guidance": guidance, "range": [start, stop],
                   "stream": stream, "seed": seed, "precision": precision}
    fill_store(output, stop - start, (size, size, 3), batch_size, fingerprint, compute, desc=stream, codec=codec)
