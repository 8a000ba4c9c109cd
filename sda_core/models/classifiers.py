"""Source classifiers: timm models built by name, local weights only, and their preprocessing."""
from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

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
        raise ValueError(f"unknown timm architecture {timm_name!r}; close matches: {', '.join(close) or 'none'} "
                         "(timm.list_models() lists all)")
    return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **(timm_kwargs or {}))


def pretrained_hub_id(timm_name: str) -> str | None:
    """The Hugging Face repository of timm's pretrained weights for `timm_name` (name.tag), if timm has one."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    return cfg.hf_hub_id if cfg is not None else None


def cached_pretrained_weights(timm_name: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """timm's pretrained weights of `timm_name` in the local Hugging Face cache (default: HF_HUB_CACHE);
    never downloads."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = pretrained_hub_id(timm_name)
    for filename in ("model.safetensors", "pytorch_model.bin") if hub_id else ():
        path = try_to_load_from_cache(hub_id, filename, cache_dir=cache_dir)
        if isinstance(path, str):
            return Path(path)
    return None


def how_to_obtain_weights(timm_name: str) -> str:
    hub_id = pretrained_hub_id(timm_name) or f"timm/{timm_name}"
    return (f"Fetch timm's weights once where there is network access (`huggingface-cli download {hub_id} "
            "model.safetensors`, then copy the Hugging Face cache, or set HF_HUB_CACHE to it), or set the "
            "architecture's `weights:` to a local file.")


def load_classifier(timm_name: str, num_classes: int, timm_kwargs: dict | None,
                    weights: str | os.PathLike) -> nn.Module:
    """A timm model with weights from a local file in timm naming or in the original release's naming.

    Original releases (torchvision ResNet, Microsoft Swin, Meta ConvNeXt .pth files) go through the
    conversion timm applies to them itself (the model module's checkpoint_filter_fn).
    """
    model = create_classifier(timm_name, num_classes, timm_kwargs)
    state = read_state_dict(weights, how_to_obtain_weights(timm_name))
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is not None and set(state) != set(model.state_dict()):
        state = convert(state, model)
    return load_state(model, state, weights)


@dataclass(frozen=True)
class Preprocess:
    """Classifier input: resize the short side to `resize` (bicubic), centre-crop `crop`, normalise.

    Works on float (N, C, H, W) batches in [0, 1] on any device, so adapted images go to the
    classifier without a round trip through PIL. ImageNet: resize 256, crop 224 (DESIGN.md 4).
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from sda_core.images import resize

        height, width = x.shape[-2:]
        scale = self.resize / min(height, width)  # torchvision's rule: the long side is truncated
        x = resize(x, (int(height * scale), int(width * scale)))
        height, width = x.shape[-2:]
        top, left = round((height - self.crop) / 2), round((width - self.crop) / 2)
        x = x[..., top:top + self.crop, left:left + self.crop]
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
