"""The segmentation task's aggregate: mIoU tables with bootstrap intervals over scenes, the paired
differences, the sanity checks and the per-corruption plot.

The methods are the classification ones (sda_core.methods: Source, DiffPure, DDA, SDA and the
adapted-only rows), whose softmax sums run over the class axis of each pixel; a method's prediction is
the per-pixel argmax. Its score on a corruption is the mIoU of the set's summed confusion matrix
(sda_core.segmentation). The corruptions corrupt the same target scenes, so one draw of scenes resamples
every corruption of a split (its mean) and every method (the paired differences).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sda_core.ensemble import Method, fuse, method_labels, method_terms
from sda_core.image_sets import labels_key, predictions_key
from sda_core.methods import run_methods
from sda_core.scoring.plots import plot_accuracy
from sda_core.scoring.predictions import PredictionFiles, PredictionReader
from sda_core.scoring.sanity import SANITY_CHECKS
from sda_core.scoring.tables import corruption_groups, paired_difference_table
from sda_core.segmentation import (
    bootstrap_resamples,
    confusions,
    mean_iou,
    miou_interval,
    paired_difference_interval,
)

log = logging.getLogger(__name__)

# the methods scored and compared: the registry's that need no per-image stage (none runs for segmentation)
METHODS, COMPARISONS = run_methods({}, fusions=False)

Confusions = dict[str, dict[tuple[str, str], np.ndarray]]  # arch -> (method, corruption) -> (N, K, K)


def method_confusions(
    predictions: Mapping[str, np.ndarray], method: Method, corruption: str, num_classes: int
) -> np.ndarray:
    """Per-scene confusion matrices (N, K, K) of `method`'s per-pixel prediction on `corruption`."""
    fused = fuse(method.fusion, method_terms(predictions, method, corruption))
    return confusions(fused.argmax(1), method_labels(predictions, method, corruption), num_classes)


def all_confusions(prediction_files: PredictionFiles, corruptions: list[str], num_classes: int) -> Confusions:
    found: Confusions = {}
    for arch, files in prediction_files.items():
        found[arch] = {}
        for c in corruptions:
            with PredictionReader(files) as arrays:
                found[arch].update(
                    {(name, c): method_confusions(arrays, method, c, num_classes) for name, method in METHODS.items()}
                )
    return found


def _draws(sets: list[np.ndarray], seed: int, resamples: int) -> np.ndarray:
    return bootstrap_resamples(len(sets[0]), seed, resamples)


def miou_table(
    found: Confusions, test: list[str], validation: list[str], severity: int, seed: int, resamples: int
) -> pd.DataFrame:
    """Long form: arch, method, corruption (or "mean" of the split), split, severity, n (scenes), miou,
    ci_low, ci_high (percentile bootstrap over scenes, seeded)."""
    rows = []
    for arch, by_method in found.items():
        for method in METHODS:
            for split, corruption, members in corruption_groups(test, validation):
                sets = [by_method[method, c] for c in members]
                miou, low, high = miou_interval(sets, _draws(sets, seed, resamples))
                rows.append(
                    {
                        "arch": arch,
                        "method": method,
                        "corruption": corruption,
                        "split": split,
                        "severity": severity,
                        "n": len(sets[0]),
                        "miou": miou,
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return pd.DataFrame(rows)


def paired_miou_table(
    found: Confusions, test: list[str], validation: list[str], seed: int, resamples: int
) -> pd.DataFrame:
    """Differences of mIoU (first minus second, points) on the same resampled scenes, per corruption and
    for the mean over the split's corruptions."""

    def on_the_same_scenes(first, second):
        return paired_difference_interval(first, second, _draws(first, seed, resamples))

    return paired_difference_table(found, COMPARISONS, test, validation, on_the_same_scenes)


def sanity_miou_table(prediction_files: PredictionFiles, num_classes: int) -> pd.DataFrame:
    """The classification sanity checks (sda_core.scoring.sanity.SANITY_CHECKS) as mIoU: against the label maps,
    on the clean target scenes, after unguided diffusion and after DDA, and the generator's agreement
    (the source segmenter on the generated images against the maps they were drawn for)."""
    rows = []
    for arch, files in prediction_files.items():
        with PredictionReader(files) as arrays:
            for check, model, images in SANITY_CHECKS:
                predicted = arrays[predictions_key(model, images)].argmax(1)
                labels = arrays[labels_key(images)]
                found = confusions(predicted, labels, num_classes)
                rows.append({"arch": arch, "check": check, "n": len(labels), "miou": mean_iou(found)})
    return pd.DataFrame(rows)


def score_miou(
    prediction_files: PredictionFiles,
    test: list[str],
    validation: list[str],
    severity: int,
    num_classes: int,
    seed: int,
    table_output: str,
    paired_output: str,
    sanity_output: str,
    plot_output: str,
    title: str,
    resamples: int = 1000,
    has_clean: bool = True,
    fusion_output: str | None = None,
    variants: dict[str, str] | None = None,
    fusions: bool = False,
    per_image: dict[str, list[str]] | None = None,
    processes: list[str] | None = None,
    synthetic: bool = True,
    studies: list[str] | None = None,
    models: dict[str, list[str]] | None = None,
    questions: dict[str, list[str]] | None = None,
) -> None:
    """The segmentation task's score stage (every task's score interface: sda_core.tasks.base.Task): the
    reference methods only; the embedded scenes always have their clean set. questions: none (a vlm poses
    no segmentation); models: arch -> its models (every segmenter has f and f', all the methods read)."""
    extras = {
        "variants": variants,
        "fusions": fusions,
        "per_image": any((per_image or {}).values()),
        "fusion_output": fusion_output,
        "without diffpure": processes is not None and "diffpure" not in processes,
        "without synthetic sets": not synthetic,
        "studies": studies,
    }
    asked = [name for name, value in extras.items() if value]
    if asked or not has_clean:
        raise ValueError(
            f"segmentation scores the reference methods on runs with a clean set; asked: {asked or 'no clean set'}"
        )
    found = all_confusions(prediction_files, test + validation, num_classes)
    table = miou_table(found, test, validation, severity, seed, resamples)
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_miou_table(found, test, validation, seed, resamples)
    paired.to_csv(paired_output, index=False, float_format="%.2f")
    sanity = sanity_miou_table(prediction_files, num_classes)
    sanity.to_csv(sanity_output, index=False, float_format="%.2f")
    plot_accuracy(table, plot_output, title, value="miou", axis_label="mIoU (%)")
    means = table[(table.corruption == "mean") & (table.split == "test")]
    log.info(
        "mean mIoU over the test corruptions:\n%s",
        means.pivot(index="arch", columns="method", values="miou").round(1).T.to_string(),
    )
    log.info("paired differences, means:\n%s", paired[paired.corruption == "mean"].round(2).to_string(index=False))
    log.info("sanity:\n%s", sanity.round(1).to_string(index=False))
