"""Stage: the preview grid, the same samples through every stage, drawn as the run's task shows them
(sda_core.tasks: images with their classes, or scenes with their label maps and predicted maps)."""

from __future__ import annotations

from sda_core.tasks import task_named


def preview_job(task: str, rows: dict, prediction_files: dict[str, str], output: str, num_classes: int) -> None:
    """rows: the task's preview_rows (name -> (kind, stores, method)); prediction_files: image set -> the
    predict stage's file holding it, for rows of kind "predicted"."""
    task_named(task).preview(rows, prediction_files, output, num_classes)
