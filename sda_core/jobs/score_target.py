"""Stage (classification): the tables of one named target set (e.g. ImageNet-W): every method's top-1
and the paired differences over the same images."""

from __future__ import annotations

import logging

from sda_core.methods import not_run as stages_not_run
from sda_core.methods import run_methods
from sda_core.scoring.accuracy import accuracy_table, correctness, paired_table
from sda_core.scoring.predictions import PredictionFiles

log = logging.getLogger(__name__)


def score_target_job(
    prediction_files: PredictionFiles,
    target: str,
    table_output: str,
    paired_output: str,
    variants: dict[str, str] | None = None,
    per_image: dict[str, list[str]] | None = None,
    processes: list[str] | None = None,
    studies: list[str] | None = None,
    models: dict[str, list[str]] | None = None,
) -> None:
    """The tables of a named target set: each method's accuracy (long form: arch, method, target, n,
    top1, ci_low, ci_high) and the paired comparisons. The fusions are left out: their tuned weight
    belongs to the corruptions' validation split."""
    methods, comparisons = run_methods(variants or {}, False, per_image, processes, studies or ())
    not_run = stages_not_run(list(prediction_files), per_image, models, methods)
    correct = correctness(prediction_files, [target], methods, {}, not_run)
    table = accuracy_table(correct, [target], [], severity=0)
    table = (
        table[table.corruption != "mean"].drop(columns=["split", "severity"]).rename(columns={"corruption": "target"})
    )
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_table(correct, comparisons, [target], [])
    paired = paired[paired.corruption != "mean"].drop(columns=["split", "corruptions"])
    paired.rename(columns={"corruption": "target"}).to_csv(paired_output, index=False, float_format="%.2f")
    log.info("%s, top-1:\n%s", target, table.pivot(index="arch", columns="method", values="top1").round(1).T)
