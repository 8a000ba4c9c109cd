"""The model a task trains, fine-tunes and scores: a timm classifier (a class per image), or for
segmentation (a label map per image) a DeepLabV3 on a timm backbone (sda_core.models.segmenters).

The choice is made here once, from the architecture's model params: `segmenter` (the head's settings:
feature_index, atrous_rates, aspp_channels) makes it a segmenter. The training loop (per-pixel
cross-entropy for label maps), the stores, the diffusion stages and the prediction job are shared by
the tasks; segmentation is scored as mIoU (sda_core.segmentation, sda_core.jobs.score_segmentation).
"""

from __future__ import annotations

import os

import numpy as np
from torch import nn

from sda_core.models.classifiers import create_classifier, load_classifier
from sda_core.models.segmenters import SegmenterSpec, create_segmenter, load_segmenter


def segmenter_spec(timm_name: str, num_classes: int, timm_kwargs: dict | None, segmenter: dict) -> SegmenterSpec:
    settings = {key: tuple(value) if isinstance(value, list) else value for key, value in segmenter.items()}
    return SegmenterSpec(timm_name, num_classes, dict(timm_kwargs or {}), **settings)


def create_model(
    timm_name: str, num_classes: int, timm_kwargs: dict | None, segmenter: dict | None = None
) -> nn.Module:
    """A randomly initialised classifier, or with `segmenter` a segmenter."""
    if segmenter is None:
        return create_classifier(timm_name, num_classes, timm_kwargs)
    return create_segmenter(segmenter_spec(timm_name, num_classes, timm_kwargs, segmenter))


def load_model(
    timm_name: str,
    num_classes: int,
    timm_kwargs: dict | None,
    weights: str | os.PathLike,
    segmenter: dict | None = None,
    how_to_obtain: str = "",
) -> nn.Module:
    """A classifier (timm or original naming, sda_core.models.classifiers), or with `segmenter` a
    segmenter, with its weights from a local file."""
    if segmenter is None:
        return load_classifier(timm_name, num_classes, timm_kwargs, weights, how_to_obtain)
    return load_segmenter(segmenter_spec(timm_name, num_classes, timm_kwargs, segmenter), weights, how_to_obtain)


def score(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """The task's score in percent: top-1 of class labels, mIoU of label maps (sda_core.segmentation)."""
    predicted = probabilities.argmax(1)
    if labels.ndim == 1:
        return 100 * float(np.mean(predicted == labels))
    from sda_core.segmentation import confusions, mean_iou

    return mean_iou(confusions(predicted, labels, num_classes))


def score_summary(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> str:
    """A one-line score for a log."""
    return f"{'top-1' if labels.ndim == 1 else 'mIoU'} {score(probabilities, labels, num_classes):.2f}%"
