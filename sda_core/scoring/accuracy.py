"""The classification task's aggregate: per-image correctness of every method, top-1 with 95% Wilson
intervals (mean over corruptions: sda_core.ensemble.mean_interval), paired differences from the
per-image differences, the sanity table, and the tables of a run and of a named target set."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sda_core.ensemble import (
    WEIGHT_GRID,
    Method,
    mean_interval,
    method_correct,
    method_labels,
    method_terms,
    paired_difference,
    tune_weight,
    weight_hits,
    wilson_interval,
)
from sda_core.image_sets import CLEAN, SOURCE, labels_key, predictions_key, question_key, question_labels_key
from sda_core.methods import not_run as stages_not_run
from sda_core.methods import run_methods
from sda_core.scoring.plots import plot_accuracy
from sda_core.scoring.predictions import PredictionFiles, PredictionReader
from sda_core.scoring.sanity import SANITY_CHECKS, SOURCE_CLEAN, is_synthetic, question_check
from sda_core.scoring.tables import corruption_wins, paired_difference_table

log = logging.getLogger(__name__)


def _row(correct: np.ndarray) -> dict:
    n, hits = int(correct.size), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"n": n, "top1": 100 * hits / n, "ci_low": 100 * low, "ci_high": 100 * high}


Correctness = dict[str, dict[tuple[str, str], np.ndarray]]  # arch -> (method, corruption) -> per image


Weights = dict[str, dict[str, float]]  # arch -> tuned_weight method -> its weight


def tuned_weights(
    prediction_files: PredictionFiles,
    methods: dict[str, Method],
    validation: list[str],
    not_run: dict[str, set[str]] | None = None,
) -> tuple[Weights, pd.DataFrame]:
    """The weight of every tuned_weight method, chosen on the validation corruptions only (the test
    corruptions are not read), and the grid it was chosen from (long form: arch, method, weight,
    validation_top1, chosen); not_run: arch -> the methods not made for it."""
    tuned = [name for name, method in methods.items() if method.fusion == "tuned_weight"]
    weights: Weights = {}
    rows = []
    for arch, files in prediction_files.items():
        weights[arch] = {}
        for name in tuned:
            if name in (not_run or {}).get(arch, set()):
                continue
            accuracies = []
            for c in validation:
                with PredictionReader(files) as arrays:
                    labels = method_labels(arrays, methods[name], c)
                    accuracies.append(weight_hits(method_terms(arrays, methods[name], c), labels) / labels.size)
            accuracies = np.array(accuracies)
            weights[arch][name] = tune_weight(accuracies)
            rows += [
                {
                    "arch": arch,
                    "method": name,
                    "weight": w,
                    "validation_top1": 100 * accuracies[:, k].mean(),
                    "chosen": w == weights[arch][name],
                }
                for k, w in enumerate(WEIGHT_GRID)
            ]
    return weights, pd.DataFrame(rows, columns=["arch", "method", "weight", "validation_top1", "chosen"])


def correctness(
    prediction_files: PredictionFiles,
    corruptions: list[str],
    methods: dict[str, Method],
    weights: Weights,
    not_run: dict[str, set[str]] | None = None,
) -> Correctness:
    """Per-image correctness of every method on every corruption, computed once for all tables
    (files opened per corruption, so at most one corruption's arrays are held at a time). not_run:
    arch -> methods the run does not make for it (GDA outside gda.architectures); the tables leave
    their rows and comparisons out."""
    correct: Correctness = {}
    for arch, files in prediction_files.items():
        correct[arch] = {}
        run = {name: method for name, method in methods.items() if name not in (not_run or {}).get(arch, set())}
        for c in corruptions:
            with PredictionReader(files) as arrays:
                correct[arch].update(
                    {
                        (name, c): method_correct(arrays, method, c, weights.get(arch, {}).get(name))
                        for name, method in run.items()
                    }
                )
    return correct


def accuracy_table(correct: Correctness, test: list[str], validation: list[str], severity: int) -> pd.DataFrame:
    rows = []
    for arch, by_method in correct.items():
        for method in dict.fromkeys(method for method, _ in by_method):
            for split, corruptions in (("test", test), ("validation", validation)):
                split_rows = [
                    {
                        "arch": arch,
                        "method": method,
                        "corruption": c,
                        "split": split,
                        "severity": severity,
                        **_row(by_method[method, c]),
                    }
                    for c in corruptions
                ]
                rows += split_rows
                if split_rows:
                    accuracies = [r["top1"] / 100 for r in split_rows]
                    low, high = mean_interval(accuracies, [r["n"] for r in split_rows])
                    rows.append(
                        {
                            "arch": arch,
                            "method": method,
                            "corruption": "mean",
                            "split": split,
                            "severity": severity,
                            "n": sum(r["n"] for r in split_rows),
                            "top1": 100 * float(np.mean(accuracies)),
                            "ci_low": 100 * low,
                            "ci_high": 100 * high,
                        }
                    )
    return pd.DataFrame(rows)


def paired_table(
    correct: Correctness, comparisons: list[tuple[str, str]], test: list[str], validation: list[str]
) -> pd.DataFrame:
    """Differences between methods (first minus second, percentage points), paired over the same images:
    a row per corruption, then the mean over the split's corruptions (corruption "mean")."""

    def points(first, second):
        return tuple(100 * value for value in paired_difference(first, second))

    return paired_difference_table(correct, comparisons, test, validation, points)


def set_correct(arrays: Mapping[str, np.ndarray], model: str, image_set: str) -> np.ndarray:
    """Per-image correctness of one model on one image set, from the predict stage's arrays."""
    return arrays[predictions_key(model, image_set)].argmax(1) == arrays[labels_key(image_set)]


def sanity_table(
    prediction_files: PredictionFiles,
    has_clean: bool,
    synthetic: bool = True,
    questions: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """The sanity checks, those on the clean set only where the run has one, those on the synthetic sets
    only where it makes them; a missing set raises. questions: arch -> a vlm's other questions than its
    table question, whose source accuracy on the clean set is a check of its own."""
    rows = []
    for arch, files in prediction_files.items():
        with PredictionReader(files) as arrays:
            for check, model, images in SANITY_CHECKS:
                if (CLEAN in images.split("/") and not has_clean) or (is_synthetic(images) and not synthetic):
                    continue
                rows.append({"arch": arch, "check": check, **_row(set_correct(arrays, model, images))})
            for question in (questions or {}).get(arch, []) if has_clean else []:
                answers = arrays[question_labels_key(question, CLEAN)]
                correct = arrays[question_key(question, SOURCE, CLEAN)].argmax(1) == answers
                rows.append({"arch": arch, "check": question_check(SOURCE_CLEAN, question), **_row(correct)})
    # the columns even without a row (a run with neither a clean nor a synthetic set)
    return pd.DataFrame(rows, columns=["arch", "check", "n", "top1", "ci_low", "ci_high"])


def score_accuracy(
    prediction_files: PredictionFiles,
    test: list[str],
    validation: list[str],
    severity: int,
    has_clean: bool,
    table_output: str,
    paired_output: str,
    sanity_output: str,
    plot_output: str,
    title: str,
    variants: dict[str, str] | None = None,
    fusions: bool = False,
    fusion_output: str | None = None,
    per_image: dict[str, list[str]] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    processes: list[str] | None = None,
    synthetic: bool = True,
    studies: list[str] | None = None,
    models: dict[str, list[str]] | None = None,
    questions: dict[str, list[str]] | None = None,
) -> None:
    """questions: arch -> a vlm's questions beside its table question (sanity rows and the clean gate).
    models: arch -> the models it has (sda_core.models.kinds: f, f' and the studies' variants for a
    classifier, f, f' and LoRA on source for a vlm); the methods reading another are not made for it.
    processes: the reverse processes the run makes of its target sets (None: all), synthetic: whether it
    makes the synthetic sets (sda_core.image_sets.RunImageSets); variants: method label -> fine-tuned
    model of a study (sda_core.studies); fusions: add the
    fusion methods, whose tuned weight (and its grid, to fusion_output) comes from `validation` only;
    per_image: per-image stage (sda_core.methods.PER_IMAGE_STAGES: memo, gda) -> the architectures it
    made predictions for (prediction_files holds their stores). num_classes and seed: part of every
    task's score interface; top-1 and its Wilson intervals need neither. studies: those whose rows are
    registry entries (sda_core.studies.Studies.scored)."""
    methods, comparisons = run_methods(variants or {}, fusions, per_image, processes, studies or ())
    not_run = stages_not_run(list(prediction_files), per_image, models, methods)
    weights, grid = tuned_weights(prediction_files, methods, validation, not_run)
    if fusion_output is not None:
        grid.to_csv(fusion_output, index=False, float_format="%.2f")
    correct = correctness(prediction_files, test + validation, methods, weights, not_run)
    table = accuracy_table(correct, test, validation, severity)
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_table(correct, comparisons, test, validation)
    paired.to_csv(paired_output, index=False, float_format="%.2f")
    sanity = sanity_table(prediction_files, has_clean, synthetic, questions)
    sanity.to_csv(sanity_output, index=False, float_format="%.2f")
    plot_accuracy(table, plot_output, title)
    means = table[(table.corruption == "mean") & (table.split == "test")]
    log.info(
        "mean top-1 over the test corruptions:\n%s",
        means.pivot(index="arch", columns="method", values="top1").round(1).T.to_string(),
    )
    if weights:
        log.info("weights tuned on the validation corruptions: %s", weights)
    log.info("paired differences, means:\n%s", paired[paired.corruption == "mean"].round(2).to_string(index=False))
    for row in corruption_wins(paired).itertuples():
        log.info(
            "%s: %s ahead with the paired interval above zero on %d of %d test corruptions, behind on %d (%s), "
            "inconclusive on %d",
            row.arch,
            row.comparison,
            row.ahead,
            row.corruptions,
            row.behind,
            row.behind_on or "none",
            row.inconclusive,
        )
    log.info("sanity:\n%s", sanity.round(1).to_string(index=False))
