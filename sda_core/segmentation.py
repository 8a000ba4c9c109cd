"""Segmentation scores: confusion matrices per image, mean IoU, and its bootstrap interval over images.

mIoU sums the confusion matrix over the whole set first, as PASCAL VOC's evaluation does; each
class's IoU is TP / (TP + FP + FN) over it, and the mean runs over the classes that occur in the
labels or the predictions of the set (scikit-learn's macro average; VOC's devkit averages over every
class, which differs only for a set, or a bootstrap resample, that misses a class entirely). Pixels labelled
IGNORE_INDEX count nowhere. Intervals resample images, not pixels: the pixels of one image are not
independent draws.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def mean_miou(per_set: Sequence[np.ndarray], rows: np.ndarray | None = None) -> float:
    """The mean over image sets of each set's mIoU (percent), from per-image confusions (N, K, K) per set,
    on the images `rows` of every set (all when None): e.g. the mean over the test corruptions, which
    corrupt the same scenes, resampled together."""
    return float(np.mean([mean_iou(c if rows is None else c[rows]) for c in per_set]))


def _resampled(per_set: Sequence[np.ndarray], draws: np.ndarray) -> np.ndarray:
    sizes = {len(c) for c in per_set}
    if sizes != {draws.shape[1]}:
        raise ValueError(f"image sets of {sorted(sizes)} images resampled by draws of {draws.shape[1]}")
    return np.array([mean_miou(per_set, rows) for rows in draws])


def miou_interval(
    per_set: Sequence[np.ndarray], draws: np.ndarray, level: float = BOOTSTRAP_LEVEL
) -> tuple[float, float, float]:
    """(mean mIoU, lower, upper) in percent: a percentile bootstrap over images, the same draws for
    every set (bootstrap_resamples); no interval (NaN) from a single image, whose resamples all agree."""
    if draws.shape[1] < 2:
        return mean_miou(per_set), float("nan"), float("nan")
    values = _resampled(per_set, draws)
    tail = (1 - level) / 2
    return mean_miou(per_set), float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def paired_difference_interval(
    first: Sequence[np.ndarray], second: Sequence[np.ndarray], draws: np.ndarray, level: float = BOOTSTRAP_LEVEL
) -> tuple[float, float, float]:
    """(mean mIoU of `first` - that of `second`, lower, upper) in points: both methods scored on the
    same resampled images in each draw, so that what the images share cancels; no interval (NaN) from a
    single image."""
    if draws.shape[1] < 2:
        return mean_miou(first) - mean_miou(second), float("nan"), float("nan")
    values = _resampled(first, draws) - _resampled(second, draws)
    tail = (1 - level) / 2
    point = mean_miou(first) - mean_miou(second)
    return point, float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
