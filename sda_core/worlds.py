"""The worlds a run is set in: what each makes here, and the task it poses. Torch-free: the workflow
reads it while it parses.

- imagenet: official checkpoints and ImageNet-C on disk; classification.
- digits: scikit-learn's digits, every model trained here; classification.
- digit_scenes: scenes of those digits with label maps (sda_core.data.digit_scenes); segmentation.
"""

from __future__ import annotations

import json
from pathlib import Path

from sda_core.tasks import TASKS, Task, task_named

WORLD_TASKS = {"imagenet": "classification", "digits": "classification", "digit_scenes": "segmentation"}
EMBEDDED_WORLDS = ("digits", "digit_scenes")  # their data and models are made by the workflow


def is_embedded(world: str) -> bool:
    """Whether the workflow makes the world's data and trains its models itself (no download)."""
    return world in EMBEDDED_WORLDS


def num_classes(config: dict) -> int:
    """The classes of the world's labels: digits 10, digit scenes 11 (background too), ImageNet's config."""
    if config["world"] == "digits":
        from sda_core.data.digits import NUM_CLASSES

        return NUM_CLASSES
    if config["world"] == "digit_scenes":
        from sda_core.data.digit_scenes import NUM_CLASSES

        return NUM_CLASSES
    return config["imagenet"]["num_classes"]


def task_of(world: str) -> Task:
    """The task the world poses (one object of sda_core.tasks.TASKS)."""
    return task_named(WORLD_TASKS[world])


def task_problems(config: dict) -> list[str]:
    """A config's task key that differs from the task its world poses (what else a task refuses:
    sda_core.tasks.base.Task.problems)."""
    world, task = config["world"], config["task"]
    if task not in TASKS:
        return [f"task: unknown task {task!r}; valid: {', '.join(TASKS)} (sda_core.tasks.TASKS)"]
    if WORLD_TASKS[world] != task:
        return [f"task: world {world} poses {WORLD_TASKS[world]}, not {task}; set task: {WORLD_TASKS[world]}"]
    return []


def generated_maps(config: dict, seed: int) -> dict | None:
    """The label maps the world's generator draws its synthetic set for (the settings of
    sda_core.data.digit_scenes.GeneratedMaps), or None where it is conditioned on classes."""
    if config["world"] != "digit_scenes":
        return None
    scenes = config["digit_scenes"]
    maps = {"resolution": scenes["resolution"], "test_fraction": scenes["test_fraction"], "seed": seed}
    return {**maps, "count": scenes["generated_scenes"]}


def _trained_here(root: Path) -> bool:
    """Denoisers trained by the workflow: only the embedded worlds train them (ImageNet reads its files)."""
    return any(root.glob("models/unconditional.safetensors")) or any(
        root.glob("seed-*/models/unconditional.safetensors")
    )


def _embedded_world_of(root: Path) -> str:
    """The embedded world of a run without its data/ folder, told by how its target stores hold their labels
    (a class per image: digits; a label map: digit scenes), or "an embedded world" where none is left."""
    for labels in sorted(root.glob("**/target/*.zarr/labels/zarr.json"))[:1]:
        dimensions = len(json.loads(labels.read_text())["shape"])
        return [w for w in EMBEDDED_WORLDS if len(task_of(w).label_layout(1).shape) + 1 == dimensions][0]
    return "an embedded world"


def other_world_in(results: str, world: str) -> str | None:
    """A problem when `results` already holds another world's run. The worlds' outputs share names
    (models/, adapted/, target/, predictions/), so a run of this world there would overwrite that one's.
    An embedded world is known by its data folder (data/<world>, of any seed), which its first job makes;
    ImageNet by what its jobs write (imported models, target or adapted sets) with no such folder. (Its
    manifests are no sign: parsing an ImageNet config writes them, a dry run too.)"""
    root = Path(results)
    found = [w for w in EMBEDDED_WORLDS if (root / "data" / w).is_dir() or any(root.glob(f"seed-*/data/{w}"))]
    if not found and _trained_here(root):  # an embedded world whose data/ folder is gone
        found = [_embedded_world_of(root)]
    elif not found and any((root / folder).is_dir() for folder in ("models/source", "target", "adapted")):
        found = ["imagenet"]
    if found == ["an embedded world"]:
        return (
            f"{results}/ holds a run of an embedded world whose data/ folder is gone, so which world cannot be "
            f"told: run {world} in a folder of its own (snakemake --directory <folder>) or move {results}/ away"
        )
    others = [w for w in found if w != world]
    if not others:
        return None
    return (
        f"{results}/ holds a run of world {' and '.join(others)}, whose outputs share paths with a {world} run: "
        f"run {world} in a folder of its own (snakemake --directory <folder>; make scenes uses runs/digit_scenes) "
        f"or move {results}/ away"
    )
