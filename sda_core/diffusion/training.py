"""Training a denoiser with IDDPM's hybrid objective, uniform timesteps and an EMA of the weights."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sda_core.diffusion.schedule import DiffusionSchedule, hybrid_loss
from sda_core.finite import NonFiniteError
from sda_core.pixels import to_model_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenoiserTrainSettings:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999  # the sampled model is the EMA, as for ADM and DiT
    ema_warmup: int = 0  # plain copies of the weights before the EMA starts
    seed: int = 0


def train_denoiser(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray | None,
    settings: DenoiserTrainSettings,
    device: torch.device,
    num_train_steps: int = 1000,
    name: str = "denoiser",
) -> nn.Module:
    """Fit `model` to the images (labels only for a conditional model: classes, or label maps for a
    mask-conditional ADM); returns the EMA model.

    Timesteps are drawn uniformly from the full 1000-step schedule, as in ADM and DiT.
    """
    schedule = DiffusionSchedule(num_train_steps)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    running = None
    for step in tqdm(range(settings.steps), desc="train denoiser", mininterval=10):
        index = rng.integers(0, len(images), size=settings.batch_size)
        x0 = to_model_range(images[index], device)
        y = torch.from_numpy(labels[index]).to(device) if labels is not None else None
        i = torch.from_numpy(rng.integers(0, num_train_steps, size=settings.batch_size))
        noise = torch.randn_like(x0)
        x_t = schedule.q_sample(x0, i, noise)
        loss = hybrid_loss(schedule, model(x_t, i.to(device), y), x0, x_t, i, noise)
        if not torch.isfinite(loss):
            raise NonFiniteError(
                f"training {name}: the loss is {loss.item()} at step {step + 1} of {settings.steps} "
                f"(lr {settings.lr}); the model diverged or its weights are broken, nothing was saved"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = 0.0 if step < settings.ema_warmup else settings.ema_decay
        with torch.no_grad():
            for ema_param, param in zip(ema.parameters(), model.parameters()):
                ema_param.lerp_(param, 1.0 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % max(settings.steps // 10, 1) == 0:
            log.info("step %d/%d: loss (smoothed) %.4f", step + 1, settings.steps, running)
    return ema
