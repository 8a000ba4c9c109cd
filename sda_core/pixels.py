"""Conversions between stored uint8 NHWC images and model tensors, and the resize both sides share."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit(images: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]; a (pinned) tensor is copied asynchronously."""
    if not isinstance(images, torch.Tensor):
        images = torch.from_numpy(np.ascontiguousarray(images))
    return images.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0


def to_model_range(images: np.ndarray, device=None) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1], the diffusion models' range."""
    return to_unit(images, device) * 2.0 - 1.0


def from_model_range(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, C), quantised as guided-diffusion does (truncation)."""
    return ((x.detach().float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of an (N, C, H, W) batch; a no-op at the same size."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
