"""Guidance of the reverse loop (sda_core.diffusion.adapt.reverse_diffusion), and DDA's low-pass guidance.

A guidance is a loss of a step's model output and x_t; the loop takes its gradient with respect to x_t
and adds `shift(gradient, out)` to the ancestral step. Two are composed with the same loop: DDA's
low-pass image guidance (below) and GDA's classifier and content guidance (sda_core.gda).

DDA's low-pass image guidance (Gao et al., CVPR 2023, eq. 5-6): A(x) is a low-pass filter: antialiased
bicubic resize of the image down by a factor D and back up.
The loss compares the low frequencies of the reference image with those of the current x_0
estimate; its gradient with respect to x_t steers the sample back towards the reference's
structure while the diffusion model replaces the high frequencies (where corruptions live).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from sda_core.diffusion.schedule import DiffusionOutput

JACOBIANS = ("full", "diagonal")


class Guidance(Protocol):
    """What reverse_diffusion asks of a guidance at step i: a scalar loss (summed over the samples, so
    that each sample's gradient is its own) and how its gradient dL/dx_t moves the step; and how the loop
    applies it:
    - every: guide the first step and every `every`-th one after it (1: every step, the reference);
    - jacobian: "full" differentiates through the denoiser (a backward pass per guided step); "diagonal"
      holds the model output fixed, so that d x0_hat / d x_t is its leading term 1 / sqrt(alpha_bar_t)
      (DDPM eq. 15 with eps constant) and the step costs one forward pass, a third of a full one.
    """

    every: int
    jacobian: str

    def loss(self, out: DiffusionOutput, x_t: torch.Tensor, i: int) -> torch.Tensor: ...

    def shift(self, gradient: torch.Tensor, out: DiffusionOutput) -> torch.Tensor: ...


def low_pass(x: torch.Tensor, downsample: int) -> torch.Tensor:
    """A(x): resize by 1/D and back with antialiased bicubic interpolation."""
    height, width = x.shape[-2:]
    small = F.interpolate(
        x, size=(height // downsample, width // downsample), mode="bicubic", align_corners=False, antialias=True
    )
    return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False, antialias=True)


@dataclass(frozen=True)
class LowPassGuidance:
    """g = dL/dx_t with L = ||A(x_ref) - A(x0_hat(x_t))||_2; the step becomes x_{t-1} - scale * g.

    norm="batch" takes one L2 norm over the whole batch, as the reference code does: each sample's
    gradient is then scaled by 1/||residual of the batch||, so the strength depends on batch size and
    batch content. norm="sample" sums per-sample norms, which makes every sample independent.
    every and jacobian: the cheaper modes of the loop (Guidance); the defaults are the reference's.
    """

    scale: float = 6.0
    downsample: int = 4
    norm: str = "batch"
    every: int = 1
    jacobian: str = "full"

    def __post_init__(self):
        if self.norm not in ("batch", "sample"):
            raise ValueError(f"guidance norm must be 'batch' or 'sample', got {self.norm!r}")
        if self.every < 1:
            raise ValueError(f"guidance every must be at least 1, got {self.every}")
        if self.jacobian not in JACOBIANS:
            raise ValueError(f"guidance jacobian must be one of {', '.join(JACOBIANS)}, got {self.jacobian!r}")

    def loss(self, pred_x0: torch.Tensor, reference_low_pass: torch.Tensor) -> torch.Tensor:
        residual = (reference_low_pass - low_pass(pred_x0, self.downsample)).float()
        if self.norm == "batch":
            return torch.linalg.vector_norm(residual)
        return torch.linalg.vector_norm(residual.flatten(1), dim=1).sum()

    def towards(self, reference: torch.Tensor) -> LowPassTowards:
        """This guidance bound to its reference images (the loop's Guidance)."""
        return LowPassTowards(self, low_pass(reference.float(), self.downsample))


@dataclass(frozen=True)
class LowPassTowards:
    """LowPassGuidance towards fixed reference images: x_{t-1} = mu + sigma z - scale * dL/dx_t (DDA eq. 6)."""

    settings: LowPassGuidance
    reference_low_pass: torch.Tensor

    @property
    def every(self) -> int:
        return self.settings.every

    @property
    def jacobian(self) -> str:
        return self.settings.jacobian

    def loss(self, out: DiffusionOutput, x_t: torch.Tensor, i: int) -> torch.Tensor:
        return self.settings.loss(out.pred_x0, self.reference_low_pass)

    def shift(self, gradient: torch.Tensor, out: DiffusionOutput) -> torch.Tensor:
        return -self.settings.scale * gradient
