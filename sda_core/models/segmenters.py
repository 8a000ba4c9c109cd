"""Segmenters: torchvision's DeepLabV3 (an ASPP head over a backbone's deepest feature map) on a timm
feature extractor, built by name, local weights only.

The paper's segmentation experiment fine-tunes a DeepLabv3; its backbone and head sizes are options
here (a digit scene of 24 px needs a backbone of small stride and a narrow head, ImageNet-sized ones
the defaults), and the logits come back at the input's size, as torchvision's model returns them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from sda_core.checkpoints import load_state, read_state_dict

ATROUS_RATES = (12, 24, 36)  # torchvision's deeplabv3_resnet50 (output stride 8)
ASPP_CHANNELS = 256


@dataclass(frozen=True)
class SegmenterSpec:
    """A DeepLabV3 on timm's `timm_name` as a feature extractor (pretrained never: weights are files).

    feature_index: which of timm's feature levels feeds the head (-1: the deepest); timm_kwargs go to
    timm.create_model (e.g. output_stride=8 for a dilated ResNet, as DeepLabV3 uses).
    """

    timm_name: str
    num_classes: int
    timm_kwargs: dict = field(default_factory=dict)
    feature_index: int = -1
    atrous_rates: tuple[int, ...] = ATROUS_RATES
    aspp_channels: int = ASPP_CHANNELS


def feature_levels(timm_name: str, timm_kwargs: dict, device: str = "meta") -> int:
    """How many feature levels timm's `timm_name` has. Built on the meta device (no memory, no weights, no
    random draws) for the parse-time check; the segmenter counts on the CPU, whose draws from the global
    generator are part of every seeded initialisation made so far (its weights depend on them)."""
    import timm

    with torch.device(device):
        return len(timm.create_model(timm_name, pretrained=False, features_only=True, **timm_kwargs).feature_info)


def feature_index_problem(
    timm_name: str, timm_kwargs: dict, feature_index: int, levels: int | None = None
) -> str | None:
    """A feature_index the backbone does not have (-levels .. levels - 1; -1 the deepest): it must not wrap
    around to another level."""
    levels = feature_levels(timm_name, timm_kwargs) if levels is None else levels
    if -levels <= feature_index < levels:
        return None
    return (
        f"segmenter.feature_index {feature_index}: {timm_name} has {levels} feature levels, "
        f"so {-levels} .. {levels - 1} (-1: the deepest)"
    )


class TimmBackbone(nn.Module):
    """A timm feature extractor returning torchvision's {"out": feature map} for DeepLabV3."""

    def __init__(self, timm_name: str, timm_kwargs: dict, feature_index: int):
        super().__init__()
        import timm

        from sda_core.models.classifiers import create_classifier

        create_classifier(timm_name, 0, timm_kwargs)  # an unknown name fails here, with close matches
        levels = feature_levels(timm_name, timm_kwargs, device="cpu")
        problem = feature_index_problem(timm_name, timm_kwargs, feature_index, levels)
        if problem:
            raise ValueError(problem)
        index = feature_index % levels
        self.body = timm.create_model(
            timm_name, pretrained=False, features_only=True, out_indices=(index,), **timm_kwargs
        )
        self.channels = self.body.feature_info.channels()[-1]
        self.reduction = self.body.feature_info.reduction()[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.body(x)[-1]}


class Segmenter(nn.Module):
    """torchvision's DeepLabV3 whose forward gives the "out" logits (N, classes, H, W) at the input's size."""

    def __init__(self, spec: SegmenterSpec):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

        backbone = TimmBackbone(spec.timm_name, spec.timm_kwargs, spec.feature_index)
        width = spec.aspp_channels
        head = nn.Sequential(  # torchvision's DeepLabHead, at a chosen width
            ASPP(backbone.channels, list(spec.atrous_rates), width),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, spec.num_classes, 1),
        )
        self.deeplab = DeepLabV3(backbone, head)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deeplab(x)["out"]


def create_segmenter(spec: SegmenterSpec) -> Segmenter:
    """A randomly initialised segmenter; weights come from a local file afterwards, never a download."""
    return Segmenter(spec)


def load_segmenter(spec: SegmenterSpec, weights: str | os.PathLike, how_to_obtain: str = "") -> Segmenter:
    model = create_segmenter(spec)
    return load_state(model, read_state_dict(weights, how_to_obtain), weights)
