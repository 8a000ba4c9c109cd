"""Stage: conditional generation of the synthetic source set, one shard of sample indices: images for
classes, or (segmentation) for label maps."""

from __future__ import annotations

import logging

import numpy as np
import torch

from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import configure_denoiser, generate
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.finite import check_finite
from sda_core.models.denoisers import load_denoiser
from sda_core.models.dit import decode_latents, load_dit, load_vae, vae_image_size
from sda_core.models.specs import is_latent
from sda_core.pixels import from_model_range
from sda_core.precision import set_up_precision
from sda_core.rng import sample_generators
from sda_core.store import fill_store, input_identities, shard_range
from sda_core.tasks import task_named

log = logging.getLogger(__name__)


def sample_job(
    output: str,
    spec: dict,
    checkpoint: str,
    num_classes: int,
    images_per_class: int,
    respacing: int,
    batch_size: int,
    shard: int,
    num_shards: int,
    seed: int,
    device: torch.device,
    precision: str = "auto",
    compile_mode: str = "none",
    vae: str | None = None,
    latent_scale: float = 0.18215,
    codec: str = "zstd",
    task: str = "classification",
    label_maps=None,
) -> None:
    """One shard of the synthetic set: global sample k is drawn for the k-th label of the task's
    conditioning (sda_core.tasks: class k mod num_classes; for segmentation, label map k of `label_maps`,
    which a mask-conditional ADM reads, the store keeping the maps as its labels) with noise seeded by k.

    A pixel-space generator (sda_core.models.specs.is_latent) is a denoiser trained by this workflow. A
    latent-space one is the official DiT (sda_core.models.dit.load_dit: a weights file or a diffusers
    directory) on latents, sampled like DiT's own sampler, x0 unclipped, and decoded by the VAE directory
    `vae` as decode(latents / latent_scale).
    """
    precision = set_up_precision(precision, device)  # resolved: what the fingerprint records
    size = spec.get("sample_size") or spec["image_size"]
    conditioning = task_named(task).conditioning(num_classes, images_per_class, label_maps)
    conditioning.check(spec, size)
    start, stop = shard_range(conditioning.count, num_shards, shard, batch_size)
    if not is_latent(spec):
        model, decoder, image_size = load_denoiser(spec, checkpoint), None, size
    elif vae is None:
        raise ValueError(
            f"a latent-space generator ({spec['in_channels']} input channels) needs its VAE: "
            "set denoisers.generator.vae"
        )
    else:
        model, decoder = load_dit(spec, checkpoint), load_vae(vae).to(device)
        image_size = vae_image_size(decoder, size)
    model = compile_denoiser(configure_denoiser(model.to(device)), compile_mode, device)
    schedule = DiffusionSchedule(respacing=respacing)

    def compute(lo: int, hi: int):
        indices = np.arange(start + lo, start + hi)
        labels = conditioning.labels(start + lo, start + hi)
        # DiT's latents are not bounded to [-1, 1]; its sampler does not clip x0 (clip_denoised=False)
        x = generate(
            model,
            schedule,
            torch.from_numpy(labels).to(device),
            (spec["in_channels"], size, size),
            sample_generators(seed, "sample", indices),
            precision=precision,
            clip_x0=decoder is None,
        )
        where = f"sample, images {start + lo}..{start + hi} (shard {shard}), generator {checkpoint}"
        check_finite(x, where)
        if decoder is not None:
            x = decode_latents(decoder, x, latent_scale)
            check_finite(x, f"{where}, decoded by the VAE {vae}")
        return from_model_range(x), labels

    fingerprint = {
        "spec": spec,
        "checkpoint": checkpoint,
        "input_identities": input_identities([checkpoint, vae]),
        "images_per_class": images_per_class,
        **conditioning.fingerprint(),
        "respacing": respacing,
        "range": [start, stop],
        "seed": seed,
        "precision": precision,
        "compile": compile_mode,
        "vae": vae,
        "latent_scale": latent_scale,
    }
    fill_store(
        output,
        stop - start,
        (image_size, image_size, 3),
        batch_size,
        fingerprint,
        compute,
        desc=f"sample {shard}",
        codec=codec,
        labels=conditioning.layout(size),
    )
    log.info("shard %d/%d: samples %d..%d", shard, num_shards, start, stop)
