"""Stage (embedded worlds): train a diffusion model on the clean source split."""

from __future__ import annotations

import logging

import torch

from sda_core.checkpoints import save_weights
from sda_core.diffusion.training import DenoiserTrainSettings, train_denoiser
from sda_core.models.denoisers import build_denoiser
from sda_core.store import StoreSequence
from sda_core.tasks import task_named

log = logging.getLogger(__name__)


def train_denoiser_job(
    store: str,
    output: str,
    spec: dict,
    settings: dict,
    conditional: bool,
    seed: int,
    device: torch.device,
    task: str = "classification",
) -> None:
    """conditional: the generator, conditioned on the store's labels as the task's generator is (its
    classes, or for segmentation its label maps, read by an ADM with mask_classes); else the
    unconditional denoiser."""
    data = StoreSequence([store])
    images, labels = data.read(0, len(data))
    condition = None
    if conditional:
        run_task = task_named(task)
        run_task.check_layout(data.label_layout, store)
        run_task.check_generator(spec, store)
        condition = run_task.condition
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
