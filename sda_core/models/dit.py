"""DiT (Peebles & Xie 2023) through diffusers' DiTTransformer2DModel, behind the sampler's interface."""
from __future__ import annotations

import torch
from torch import nn


class DiTDenoiser(nn.Module):
    """A class-conditional DiT called as denoiser(x_t, t, labels) -> [eps, v] like the ADM UNet.

    Pixel space here (the digits world); with real weights the same transformer runs on VAE latents.
    Set out_channels = 2 * in_channels for the learned-range variance DiT was trained with.
    """

    def __init__(self, **transformer_kwargs):
        super().__init__()
        from diffusers import DiTTransformer2DModel  # heavy import, only for jobs that need a DiT

        self.transformer = DiTTransformer2DModel(**transformer_kwargs)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("DiT is class-conditional: labels are required")
        return self.transformer(x, timestep=timesteps, class_labels=y).sample
