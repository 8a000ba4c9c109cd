"""Methods as fusions of stored softmax outputs (docs/method.md#ensembles), and their accuracy
intervals; the methods a run scores are registered in sda_core.methods.

A method is a list of (model, image set of the corruption scored) terms and a fusion of their
probability rows; its prediction is the argmax of the fused row. The reference methods sum the
softmaxes. DDA's code offers four other fusions of the raw-image term p and the adapted-image term q,
kept here beside the sum (on probabilities; see docs/method.md#ensembles for how its code differs):
- entropy_weighted:    p H(q) + q H(p)           (each term weighted by the other's entropy)
- confidence_weighted: p max(p) + q max(q)
- entropy_select:      the term with the lower entropy
- confidence_select:   the term with the higher top probability
and one of this project's own, tuned_weight: (1 - w) p + w q, with w chosen on the validation
corruptions only (tune_weight) and then applied unchanged to the test corruptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from sda_core.image_sets import covered_images, labels_key, predictions_key

ImageSetOf = Callable[[str], str]  # corruption -> image set name
FUSIONS = ("sum", "entropy_weighted", "confidence_weighted", "entropy_select", "confidence_select", "tuned_weight")
FUSION_LABELS = {
    "entropy_weighted": "entropy-weighted",
    "confidence_weighted": "confidence-weighted",
    "entropy_select": "lower entropy",
    "confidence_select": "higher confidence",
    "tuned_weight": "tuned weight",
}
# the grid tune_weight searches: the weight of the adapted-image term (0.5 is the reference sum)
WEIGHT_GRID = tuple(round(0.05 * k, 2) for k in range(21))


@dataclass(frozen=True)
class Method:
    terms: tuple[tuple[str, ImageSetOf], ...]  # (model, corruption -> image set)
    fusion: str = "sum"


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each probability row (0 log 0 = 0)."""
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(1)


def fuse(fusion: str, terms: list[np.ndarray], weight: float | None = None) -> np.ndarray:
    """The fused probability rows of one method (FUSIONS); one term is its own fusion."""
    if fusion == "sum" or len(terms) == 1:
        return sum(terms)
    p, q = terms
    if fusion == "entropy_weighted":
        return p * entropy(q)[:, None] + q * entropy(p)[:, None]
    if fusion == "confidence_weighted":
        return p * p.max(1, keepdims=True) + q * q.max(1, keepdims=True)
    if fusion == "entropy_select":
        return np.where((entropy(p) >= entropy(q))[:, None], q, p)
    if fusion == "confidence_select":
        return np.where((p.max(1) <= q.max(1))[:, None], q, p)
    if fusion == "tuned_weight":
        if weight is None:
            raise ValueError("the tuned_weight fusion needs the weight chosen on the validation corruptions")
        return (1 - weight) * p + weight * q
    raise ValueError(f"unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}")


def method_terms(predictions: Mapping[str, np.ndarray], method: Method, corruption: str) -> list[np.ndarray]:
    """The method's probability rows on `corruption`, each term's; where a term covers only n of the set's
    images (MEMO, GDA: image_sets.covered_images), every term's rows on those n."""
    terms = [
        predictions[predictions_key(model, images(corruption))].astype(np.float32) for model, images in method.terms
    ]
    n = min(len(term) for term in terms)
    return [term[covered_images(len(term), n)] for term in terms]


def method_labels(predictions: Mapping[str, np.ndarray], method: Method, corruption: str) -> np.ndarray:
    return predictions[labels_key(method.terms[0][1](corruption))]


def method_correct(
    predictions: Mapping[str, np.ndarray], method: Method, corruption: str, weight: float | None = None
) -> np.ndarray:
    """Per-image correctness (bool) of `method` on `corruption`; `predictions` maps the predict stage's keys
    (sda_core.image_sets) to arrays; `weight` is the tuned weight of a tuned_weight method. A method whose
    rows cover only n images of the set (MEMO, GDA with images: image_sets.covered_images) is scored on those."""
    fused = fuse(method.fusion, method_terms(predictions, method, corruption), weight)
    labels = method_labels(predictions, method, corruption)
    if len(fused) > len(labels):
        raise ValueError(f"{len(fused)} prediction rows for {len(labels)} labels on {corruption}")
    return fused.argmax(1) == labels[covered_images(len(labels), len(fused))]


def weight_hits(terms: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Correct predictions of (1 - w) p + w q for each w of WEIGHT_GRID."""
    p, q = terms
    return np.array([int((((1 - w) * p + w * q).argmax(1) == labels).sum()) for w in WEIGHT_GRID])


def tune_weight(accuracies: np.ndarray) -> float:
    """The weight of WEIGHT_GRID with the best mean accuracy (rows: validation corruptions, columns:
    the grid); ties go to the weight nearest the reference sum (0.5)."""
    mean = accuracies.mean(0)
    best = np.flatnonzero(mean >= mean.max() - 1e-12)
    return WEIGHT_GRID[min(best, key=lambda k: (abs(WEIGHT_GRID[k] - 0.5), k))]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return float("nan"), float("nan")
    return _wilson(correct / n, n, z)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at p = 0 or 1 an end equals p in exact arithmetic; keep float rounding from putting p outside
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def mean_interval(accuracies: list[float], counts: list[int], z: float = 1.96) -> tuple[float, float]:
    """95% interval of the mean of independent accuracies (the mean over corruptions), inside [0, 1].

    A Wilson score interval at the mean, with the effective sample size whose binomial variance equals
    that of the mean (sum of p_i (1 - p_i) / n_i over k^2): a normal interval leaves [0, 1] near 0 or 1
    (a validation mean of 2% over 4 corruptions of 20 images gave -4.4%). Where every p_i is 0 or 1 the
    variance estimate is 0 and the pooled count is used.
    """
    k = len(accuracies)
    mean = sum(accuracies) / k
    variance = sum(p * (1 - p) / n for p, n in zip(accuracies, counts)) / k**2
    n_effective = mean * (1 - mean) / variance if variance > 0 else sum(counts)
    return _wilson(mean, n_effective, z)


def paired_difference(first: list[np.ndarray], second: list[np.ndarray], z: float = 1.96) -> tuple[float, float, float]:
    """Mean over corruptions of the accuracy difference of two methods scored on the same images,
    with a 95% normal interval from the per-image paired differences (tighter than comparing two
    unpaired intervals, since both methods see the same images). Where one method covers only n of a
    set's images (MEMO with memo.images), the other's rows are taken on those n
    (image_sets.covered_images)."""
    differences = []
    for a, b in zip(first, second):
        n = min(a.size, b.size)
        a, b = a[covered_images(a.size, n)], b[covered_images(b.size, n)]
        differences.append(a.astype(np.float64) - b.astype(np.float64))
    k = len(differences)
    mean = sum(d.mean() for d in differences) / k
    se = math.sqrt(sum(d.var(ddof=1) / d.size for d in differences)) / k
    return mean, mean - z * se, mean + z * se
