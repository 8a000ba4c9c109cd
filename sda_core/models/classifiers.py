"""Source classifiers: timm models built by name, local weights only, and their preprocessing."""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

from sda_core.checkpoints import load_state, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_classifier(timm_name: str, num_classes: int, timm_kwargs: dict | None = None) -> nn.Module:
    """A randomly initialised timm model; weights come from a local file afterwards, never a download."""
    import timm

    if not timm.is_model(timm_name):
        close = difflib.get_close_matches(timm_name, timm.list_models(), n=8, cutoff=0.6)
        raise ValueError(
            f"unknown timm architecture {timm_name!r}; close matches: {', '.join(close) or 'none'} "
            "(timm.list_models() lists all)"
        )
    return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **(timm_kwargs or {}))


def load_classifier(
    timm_name: str, num_classes: int, timm_kwargs: dict | None, weights: str | os.PathLike, how_to_obtain: str = ""
) -> nn.Module:
    """A timm model with weights from a local file in timm naming or in the original release's naming.

    Original releases (torchvision ResNet, Microsoft Swin, Meta ConvNeXt .pth files) go through the
    conversion timm applies to them itself (the model module's checkpoint_filter_fn).
    """
    model = create_classifier(timm_name, num_classes, timm_kwargs)
    state = read_state_dict(weights, how_to_obtain)
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is not None and set(state) != set(model.state_dict()):
        state = convert(state, model)
    return load_state(model, state, weights)


@dataclass(frozen=True)
class Preprocess:
    """Classifier input: resize the short side to `resize` (bicubic), centre-crop `crop`, normalise.

    Works on float (N, C, H, W) batches in [0, 1] on any device, so adapted images go to the
    classifier without a round trip through PIL. ImageNet: resize 256, crop 224 (docs/method.md#reference-settings).
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from sda_core.pixels import resize

        height, width = x.shape[-2:]
        scale = self.resize / min(height, width)  # torchvision's rule: the long side is truncated
        x = resize(x, (int(height * scale), int(width * scale)))
        height, width = x.shape[-2:]
        top, left = round((height - self.crop) / 2), round((width - self.crop) / 2)
        return self.normalise(x[..., top : top + self.crop, left : left + self.crop])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, for inputs already at the classifier's size (e.g. AugMix views)."""
        return normalise(x, self.mean, self.std)


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel of an (N, C, H, W) batch, on its device."""
    mean_ = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_ = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - mean_) / std_
