"""Stage: the run's tables with intervals, the paired differences, the sanity table and the plot, as the
run's task scores them (sda_core.tasks: top-1 with Wilson intervals, or mIoU with a bootstrap over scenes;
the aggregates are in sda_core.scoring)."""

from __future__ import annotations

from sda_core.tasks import task_named


def score_job(task: str, **settings) -> None:
    """settings: the task's score_tables arguments (rules/score.smk gives them)."""
    task_named(task).score_tables(**settings)
