"""Guided re-noise / denoise (DDA, Gao et al. CVPR 2023) and plain ancestral sampling.

One loop serves every use of the reverse process in this workflow:
- DDA and MoD: noise the reference image to step N, denoise with low-pass guidance towards it;
- DiffPure: the same with a smaller N and no guidance;
- GDA (sda_core.gda): the same loop with its own guidance, returning the last x0 estimate;
- class-conditional generation (DiT sampling): start from pure noise at the last step, no guidance.

Like tent, the denoiser is configured once (`configure_denoiser`: eval mode, parameters frozen so the
guidance backward computes the input gradient only) and checked before use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sda_core.compilation import begin_step
from sda_core.diffusion.guidance import Guidance, LowPassGuidance
from sda_core.diffusion.respacing import noise_level
from sda_core.diffusion.schedule import DiffusionOutput, DiffusionSchedule
from sda_core.precision import autocast
from sda_core.rng import randn_per_sample


def configure_denoiser(model: nn.Module) -> nn.Module:
    """Eval mode and frozen weights: the guidance needs d loss / d x_t, never d loss / d theta.

    Weights go channels-last, the layout oneDNN and tensor-core convolutions prefer (1.1-1.25x for the
    digits UNet on a CPU core); outputs change only by float rounding.
    """
    model.eval()
    model.requires_grad_(False)
    return model.to(memory_format=torch.channels_last)


def check_denoiser(model: nn.Module) -> None:
    if model.training or any(p.requires_grad for p in model.parameters()):
        raise RuntimeError("denoiser must be configured with configure_denoiser() (eval mode, frozen weights)")


def reverse_diffusion(
    model: nn.Module,
    schedule: DiffusionSchedule,
    x: torch.Tensor,
    first_index: int,
    generators: Sequence[torch.Generator],
    labels: torch.Tensor | None = None,
    guidance: Guidance | None = None,
    precision: str = "fp32",
    clip_x0: bool = True,
    return_x0: bool = False,
) -> torch.Tensor:
    """Ancestral steps i = first_index, ..., 0 from x (taken to be x_{first_index}), x0 clamped to [-1, 1]
    unless clip_x0 is False (latents, which are not bounded; GDA).

    With guidance, each guided step is x_{i-1} = mu + sigma z + guidance.shift(dL/dx_i), L = guidance.loss(...);
    the guidance says which steps it guides (every) and whether dL/dx_i runs back through the model
    (jacobian). precision: a resolved one (sda_core.precision), the models' autocast.
    return_x0: the last step's x0 estimate instead of its sample (GDA's output); that estimate does not
    depend on the last step's guidance, which is therefore not computed.
    Each step draws one noise tensor per sample from that sample's generator, the last step included,
    so a sample's random stream never depends on its batch.
    """
    check_denoiser(model)
    batch = x.shape[0]
    for step, i in enumerate(range(first_index, -1, -1)):
        begin_step(model)  # compile: cudagraphs; the last step's outputs are not reused
        t = schedule.model_timesteps(i, batch, x.device)
        noise = randn_per_sample(generators, x.shape[1:], device=x.device)
        if guidance is not None and step % guidance.every == 0 and not (return_x0 and i == 0):
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                # "diagonal": the model output enters as a constant, so the gradient reaches x_t only
                # through x0_hat = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) (DDPM eq. 15)
                through_model = guidance.jacobian == "full"
                with torch.set_grad_enabled(through_model), autocast(x.device, precision):
                    model_output = model(x_in if through_model else x, t, labels)
                out = schedule.p_mean_variance(model_output.float(), x_in, i, clip_x0)
                (gradient,) = torch.autograd.grad(guidance.loss(out, x_in, i), x_in)
            out = DiffusionOutput(out.mean.detach(), out.log_variance.detach(), out.pred_x0.detach())
            x = schedule.ancestral_step(out, i, noise) + guidance.shift(gradient, out)
        else:
            with torch.no_grad(), autocast(x.device, precision):
                model_output = model(x, t, labels)
            out = schedule.p_mean_variance(model_output.float(), x, i, clip_x0)
            x = out.pred_x0 if return_x0 and i == 0 else schedule.ancestral_step(out, i, noise)
    return x.detach()


def renoise_denoise(
    model: nn.Module,
    schedule: DiffusionSchedule,
    reference: torch.Tensor,
    steps: int,
    generators: Sequence[torch.Generator],
    guidance: LowPassGuidance | None = None,
    noise_index: str = "reference",
    precision: str = "fp32",
) -> torch.Tensor:
    """DDA's data adaptation of a batch of images in [-1, 1]: noise them, then denoise `steps` steps.

    The denoising runs respaced indices steps-1 ... 0. noise_index="reference" noises to index `steps`
    (one level above where denoising starts), as the reference code does; "matched" noises to index
    steps-1, the level the first denoising step assumes.
    """
    level = noise_level(steps, noise_index)
    if not 1 <= steps or level >= schedule.num_steps:
        raise ValueError(f"start step {steps} ({noise_index}) does not fit a schedule of {schedule.num_steps} steps")
    noise = randn_per_sample(generators, reference.shape[1:], device=reference.device)
    x = schedule.q_sample(reference, level, noise)
    bound = guidance.towards(reference) if guidance is not None and guidance.scale != 0 else None
    return reverse_diffusion(model, schedule, x, steps - 1, generators, guidance=bound, precision=precision)


def generate(
    model: nn.Module,
    schedule: DiffusionSchedule,
    labels: torch.Tensor,
    sample_shape: Sequence[int],
    generators: Sequence[torch.Generator],
    precision: str = "fp32",
    clip_x0: bool = True,
) -> torch.Tensor:
    """Class-conditional ancestral sampling from pure noise over the whole (respaced) schedule.

    clip_x0=False for latent-space models: DiT's sampler does not clip (clip_denoised=False).
    """
    x = randn_per_sample(generators, sample_shape, device=labels.device)
    return reverse_diffusion(
        model, schedule, x, schedule.num_steps - 1, generators, labels=labels, precision=precision, clip_x0=clip_x0
    )
