"""The image sets of a run, their names and groups: the one owner of every key the stages share.

A set name is a path-like key:
- "clean": the clean target images (the digits test split; a class-balanced subset of ImageNet val);
- "target/<corruption>": the corrupted target images;
- "<process>/<corruption or clean>": a target set after a reverse process (PROCESSES);
- "synthetic/generated", "synthetic/mod": the generator's images and the same after MoD.

The predict stage stores a model's softmax outputs on a set under `predictions_key(model, set)` and
the set's labels under `labels_key(set)`; the score and preview stages read them by the same keys.
Sets are classified in groups (one predict job per architecture and group): a corruption's target and
adapted sets together, the clean sets together, the synthetic sets together, or everything in "all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CLEAN = "clean"
SYNTHETIC_GENERATED = "synthetic/generated"
SYNTHETIC_MOD = "synthetic/mod"
SYNTHETIC_GROUP = "synthetic"
ALL_GROUP = "all"
# reverse processes run on target data: DDA (guided), DiffPure, and DDA without guidance (the
# misalignment check, on clean images only)
PROCESSES = ("dda", "diffpure", "unguided")
MODELS = ("source", "finetuned")  # f and f'


def target(corruption: str) -> str:
    return f"target/{corruption}"


def adapted(process: str, images: str) -> str:
    """A target set (a corruption, or CLEAN) after a reverse process."""
    if process not in PROCESSES:
        raise ValueError(f"unknown reverse process {process!r}; valid: {', '.join(PROCESSES)}")
    return f"{process}/{images}"


def predictions_key(model: str, image_set: str) -> str:
    return f"{model}/{image_set}"


def labels_key(image_set: str) -> str:
    return f"labels/{image_set}"


def image_set_of(key: str) -> str:
    """The image set a predictions or labels key is about."""
    return key.split("/", 1)[1]


@dataclass(frozen=True)
class RunImageSets:
    """The image sets a run makes and scores: every corruption, and the clean set where there is one."""

    corruptions: tuple[str, ...]
    has_clean: bool

    @property
    def clean(self) -> list[str]:
        return [CLEAN] if self.has_clean else []

    def processed(self) -> dict[str, list[str]]:
        """process -> the target sets (corruptions, CLEAN) it runs on."""
        return {"dda": [*self.corruptions, *self.clean], "diffpure": list(self.corruptions), "unguided": self.clean}

    def groups(self) -> dict[str, list[str]]:
        """group -> its set names, in the order they are classified and stored."""
        groups = {SYNTHETIC_GROUP: [SYNTHETIC_GENERATED, SYNTHETIC_MOD]}
        for images in [*self.clean, *self.corruptions]:
            members = [CLEAN] if images == CLEAN else [target(images)]
            groups[images] = members + [
                adapted(process, images) for process, sets in self.processed().items() if images in sets
            ]
        return groups

    def stores(
        self,
        generated: Callable[[], list[str]],
        mod: Callable[[], list[str]],
        target_store: Callable[[str], str],
        adapted_stores: Callable[[str, str], list[str]],
    ) -> dict[str, list[str]]:
        """set name -> its stores, from the workflow's path functions: the synthetic sets, clean, the
        corrupted targets, then the adapted sets (the order they are classified and stored in)."""
        stores = {SYNTHETIC_GENERATED: generated(), SYNTHETIC_MOD: mod()}
        if self.has_clean:
            stores[CLEAN] = [target_store(CLEAN)]
        stores.update({target(corruption): [target_store(corruption)] for corruption in self.corruptions})
        for process, sets in self.processed().items():
            stores.update({adapted(process, images): adapted_stores(process, images) for images in sets})
        return stores

    def names(self) -> list[str]:
        return list(self.stores(list, list, str, lambda process, images: []))

    def group_of(self) -> dict[str, str]:
        """set name -> its group."""
        return {name: group for group, names in self.groups().items() for name in names}

    def preview_rows(self, corruptions: list[str]) -> list[str]:
        """Rows of the preview grid: the same test images clean and adapted, corrupted and adapted, then
        the synthetic sets."""
        rows = [CLEAN, adapted("unguided", CLEAN), adapted("dda", CLEAN)] if self.has_clean else []
        for corruption in corruptions:
            rows += [target(corruption), adapted("dda", corruption), adapted("diffpure", corruption)]
        return rows + [SYNTHETIC_GENERATED, SYNTHETIC_MOD]
