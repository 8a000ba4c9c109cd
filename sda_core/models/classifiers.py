"""Source classifiers: timm models built by name, local weights only, and their preprocessing."""

from __future__ import annotations

import difflib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sda_core.checkpoints import CheckpointError, load_state, unwrapped_state_dict

log = logging.getLogger(__name__)

WEIGHTS_FORMATS = ("auto", "timm", "openmmlab")  # architectures[].weights_format

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
    timm_name: str,
    num_classes: int,
    timm_kwargs: dict | None,
    weights: str | os.PathLike,
    how_to_obtain: str = "",
    weights_format: str = "auto",
) -> nn.Module:
    """A timm model with weights from a local file: timm's naming, an original release's, or OpenMMLab's.

    weights_format: "timm" (timm's or an original release's naming: torchvision ResNet, Microsoft Swin,
    Meta ConvNeXt .pth files, through the conversion timm applies to them itself, the model module's
    checkpoint_filter_fn), "openmmlab" (an mmcls / MMPreTrain file, sda_core.models.openmmlab), or
    "auto": OpenMMLab when the file is in its layout (a state_dict of backbone./neck./head. keys only),
    else timm. A declared format the file does not have is an error, never a silent fallback.
    """
    from sda_core.models.openmmlab import is_openmmlab, openmmlab_to_timm, read_checkpoint

    if weights_format not in WEIGHTS_FORMATS:
        raise ValueError(f"weights_format {weights_format!r}: one of {', '.join(WEIGHTS_FORMATS)}")
    model = create_classifier(timm_name, num_classes, timm_kwargs)
    path = Path(weights)
    if not path.is_file():
        hint = f" {how_to_obtain}" if how_to_obtain else ""
        raise FileNotFoundError(f"checkpoint not found: {path}.{hint}")
    checkpoint = load_file(str(path)) if path.suffix == ".safetensors" else read_checkpoint(path)
    openmmlab = is_openmmlab(checkpoint)
    if weights_format == "openmmlab" and not openmmlab:
        top = ", ".join(list(checkpoint)[:5]) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path}: weights_format is openmmlab, but the file has no state_dict of backbone./neck./head. keys "
            f"(its top-level keys: {top})"
        )
    if weights_format == "timm" and openmmlab:
        raise CheckpointError(
            f"{path}: weights_format is timm, but the file is in the OpenMMLab layout (a state_dict of "
            "backbone./neck./head. keys); set weights_format: openmmlab (or auto)"
        )
    if openmmlab:
        log.info("%s: OpenMMLab layout, converted to timm's %s", path, timm_name)
        return load_state(model, openmmlab_to_timm(checkpoint["state_dict"], model, path), path)
    log.info("%s: timm's or an original release's naming, for %s", path, timm_name)
    state = unwrapped_state_dict(checkpoint, path)
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is not None and set(state) != set(model.state_dict()):
        state = convert(state, model)
    return load_state(model, state, weights)


PREPROCESSING = ("tensor", "mmcls")


@dataclass(frozen=True)
class Preprocess:
    """Classifier input: resize the short side to `resize` (bicubic), centre-crop `crop`, normalise.

    Works on float (N, C, H, W) batches in [0, 1] on any device. ImageNet: resize 256, crop 224
    (docs/method.md#reference-settings). `preprocess` says how the resize is computed:
    - tensor: torch's antialiased bicubic on the float batch, where it lies (no round trip through PIL);
    - mmcls: the OpenMMLab test pipeline both papers evaluate with: each image as 8-bit RGB, resized by
      PIL's bicubic (short side to `resize`, the long one truncated), centre crop with Python's rounding,
      (x - mean) / std on the 0-255 scale (the same values as IMAGENET_MEAN/STD x 255). Per image on the CPU.
    """

    resize: int
    crop: int
    preprocess: str = "tensor"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess {self.preprocess!r}: one of {', '.join(PREPROCESSING)}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess == "mmcls":
            return self.normalise(pil_resize_center_crop(x, self.resize, self.crop))
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


def pil_resize_center_crop(x: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """mmcls 0.x's test transforms (Resize(size=(resize, -1), backend="pillow", interpolation="bicubic"),
    CenterCrop(crop)) on a float (N, C, H, W) batch in [0, 1], as 8-bit images; returns floats in [0, 1].
    Their rules are resize_center_crop's: the long side truncated, the crop's offsets rounded."""
    import numpy as np

    from sda_core.data.imagenet import resize_center_crop

    images = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    batch = torch.from_numpy(np.stack([resize_center_crop(image, resize, crop) for image in images]))
    return batch.permute(0, 3, 1, 2).to(x.device, torch.float32) / 255
