"""Stage (digits world): train a diffusion model on the clean source split."""

from __future__ import annotations

import logging

import torch

from sda_core.checkpoints import save_weights
from sda_core.diffusion.training import DenoiserTrainSettings, train_denoiser
from sda_core.models.denoisers import build_denoiser
from sda_core.store import StoreSequence

log = logging.getLogger(__name__)


def train_denoiser_job(
    store: str, output: str, spec: dict, settings: dict, class_conditional: bool, seed: int, device: torch.device
) -> None:
    data = StoreSequence([store])
    images, labels = data.read(0, len(data))
    torch.manual_seed(seed)
    model = build_denoiser(spec)
    log.info(
        "%s denoiser, %.2fM parameters, %s, %d images",
        spec["arch"],
        sum(p.numel() for p in model.parameters()) / 1e6,
        "class-conditional" if class_conditional else "unconditional",
        len(images),
    )
    name = f"the {'class-conditional' if class_conditional else 'unconditional'} {spec['arch']} denoiser ({output})"
    ema = train_denoiser(
        model,
        images,
        labels if class_conditional else None,
        DenoiserTrainSettings(**settings, seed=seed),
        device,
        name=name,
    )
    save_weights(ema, output, metadata={"arch": spec["arch"]})
