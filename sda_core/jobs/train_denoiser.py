"""Stage (embedded worlds): train a diffusion model on the clean source split."""

from __future__ import annotations

import logging

import torch

from sda_core.checkpoints import save_weights
from sda_core.diffusion.training import DenoiserTrainSettings, train_denoiser
from sda_core.models.denoisers import build_denoiser
from sda_core.models.specs import mask_classes
from sda_core.store import StoreSequence

log = logging.getLogger(__name__)


def train_denoiser_job(
    store: str, output: str, spec: dict, settings: dict, conditional: bool, seed: int, device: torch.device
) -> None:
    """conditional: the generator, conditioned on the store's labels, its classes or (an ADM with
    mask_classes) its label maps; else the unconditional denoiser."""
    data = StoreSequence([store])
    images, labels = data.read(0, len(data))
    condition = ("label maps" if data.label_shape else "classes") if conditional else None
    if condition == "label maps" and not mask_classes(spec):
        raise ValueError(f"{store} holds label maps: a generator conditioned on them needs mask_classes in its spec")
    torch.manual_seed(seed)
    model = build_denoiser(spec)
    kind = f"conditioned on {condition}" if condition else "unconditional"
    log.info(
        "%s denoiser, %.2fM parameters, %s, %d images",
        spec["arch"],
        sum(p.numel() for p in model.parameters()) / 1e6,
        kind,
        len(images),
    )
    ema = train_denoiser(
        model,
        images,
        labels if conditional else None,
        DenoiserTrainSettings(**settings, seed=seed),
        device,
        name=f"the {kind} {spec['arch']} denoiser ({output})",
    )
    save_weights(ema, output, metadata={"arch": spec["arch"]})
