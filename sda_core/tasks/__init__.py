"""The tasks a run can pose, one object each (sda_core.tasks.base.Task says what a task owns). A world
poses one task (sda_core.worlds); the workflow resolves it once, and every stage that differs between
tasks asks it. A new task is a module here and a line in TASKS (docs/adding-a-task.md)."""

from __future__ import annotations

from sda_core.tasks.base import Task
from sda_core.tasks.classification import Classification
from sda_core.tasks.segmentation import Segmentation

TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Segmentation())}


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name]
