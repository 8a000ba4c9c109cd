"""Segmentation scores: confusion matrices per image, mean IoU, and its bootstrap interval over images.

mIoU follows PASCAL VOC's evaluation: the confusion matrix is summed over the whole set first, each
class's IoU is TP / (TP + FP + FN) over it, and the mean runs over the classes that occur in the
labels or the predictions of the set (a class absent from both has no IoU). Pixels labelled
IGNORE_INDEX count nowhere. Intervals resample images, not pixels: the pixels of one image are not
independent draws.
"""

from __future__ import annotations

import numpy as np

from sda_core.store import IGNORE_INDEX

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


def confusions(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per image (N, K, K) pixel counts: [n, true class, predicted class], ignored pixels left out."""
    predicted = np.asarray(predicted, np.int64).reshape(len(predicted), -1)
    labels = np.asarray(labels, np.int64).reshape(len(labels), -1)
    if predicted.shape != labels.shape:
        raise ValueError(f"predictions {predicted.shape} and label maps {labels.shape} differ in shape")
    valid = labels != IGNORE_INDEX
    if (labels[valid] >= num_classes).any() or (predicted >= num_classes).any() or (labels[valid] < 0).any():
        raise ValueError(f"a class outside 0..{num_classes - 1} (and not {IGNORE_INDEX}, ignored)")
    image = np.broadcast_to(np.arange(len(labels))[:, None], labels.shape)
    flat = (image * num_classes + labels) * num_classes + predicted
    counts = np.bincount(flat[valid], minlength=len(labels) * num_classes * num_classes)
    return counts.reshape(len(labels), num_classes, num_classes)


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class from a summed (K, K) confusion matrix; NaN for a class in neither labels nor
    predictions."""
    true_positive = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """mIoU in percent of a summed (K, K) confusion matrix, or of per-image ones (N, K, K) summed."""
    if confusion.ndim == 3:
        confusion = confusion.sum(0)
    iou = class_iou(confusion)
    return float(100 * np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def bootstrap_resamples(num_images: int, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """(resamples, num_images) image indices drawn with replacement; the same draws for every method
    scored on the same images, so that differences are paired."""
    return np.random.default_rng(seed).integers(0, num_images, (resamples, num_images))


def miou_interval(per_image: np.ndarray, draws: np.ndarray, level: float = BOOTSTRAP_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval (percent) of the mIoU of per-image confusions (N, K, K)."""
    values = np.array([mean_iou(per_image[rows].sum(0)) for rows in draws])
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def paired_difference_interval(
    first: np.ndarray, second: np.ndarray, draws: np.ndarray, level: float = BOOTSTRAP_LEVEL
) -> tuple[float, float, float]:
    """(mIoU(first) - mIoU(second), lower, upper) in points: both scored on each resample of images."""
    values = np.array([mean_iou(first[rows].sum(0)) - mean_iou(second[rows].sum(0)) for rows in draws])
    tail = (1 - level) / 2
    point = mean_iou(first) - mean_iou(second)
    return point, float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
