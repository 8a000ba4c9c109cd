"""The image sets of a run, their names and groups: the one owner of every key the stages share.

A set name is a path-like key:
- "clean": the clean target images (the digits test split; a class-balanced subset of ImageNet val);
- "target/<corruption>": the corrupted target images;
- "<process>/<corruption or clean>": a target set after a reverse process (PROCESSES), or after one of
  them started from another timestep t ("<process>-t<t>/clean", the timestep study);
- "synthetic/generated", "synthetic/mod": the generator's images and the same after MoD;
- "gda/<corruption or target>": a target set as GDA adapted it (per_image_adapted), one per architecture.

The models scored are f ("source"), f' ("finetuned", fine-tuned on the MoD set) and the study variants
of f' ("finetuned-<variant>": on the generated images alone, on a class-balanced subset of the MoD
set, on MoD made at another timestep); `models_of` says which model scores which set. "memo" is f
adapted per image by MEMO, "gda" is f on each target image adapted by GDA (whose guidance uses f, so
its images differ per architecture); their predictions come from their own stages, not from the
predict stage.

The predict stage stores a model's softmax outputs on a set under `predictions_key(model, set)` and
the set's labels under `labels_key(set)`; the score and preview stages read them by the same keys.
Sets are classified in groups (one predict job per architecture and group): a corruption's target and
adapted sets together, the clean sets together, the synthetic sets together, or everything in "all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CLEAN = "clean"
SYNTHETIC_GENERATED = "synthetic/generated"
SYNTHETIC_MOD = "synthetic/mod"
SYNTHETIC_GROUP = "synthetic"
ALL_GROUP = "all"
# reverse processes run on target data: DDA (guided), DiffPure, and DDA without guidance (the
# misalignment check, on clean images only)
PROCESSES = ("dda", "diffpure", "unguided")
SWEPT_PROCESSES = ("unguided", "dda")  # the processes the timestep study starts from each t
TIMESTEPS_GROUP = "timesteps"
SOURCE = "source"  # f
FINETUNED = "finetuned"  # f', fine-tuned on the MoD set
GENERATED_ONLY = "generated"  # the variant of f' fine-tuned on the generated images without MoD (f_c')
GDA_ALIGNED = "gda"  # the variant of f' fine-tuned on MoD made by GDA's reverse process (f'_GDA), per architecture
# a vlm's control (sda_core.models.kinds): its f' recipe (LoRA) on the real source images, not on MoD
LORA_ON_SOURCE = "finetuned-source"
# MEMO: f adapted to each target image on its own (sda_core.memo); its predictions of a target set are
# stored by its own stage (prediction stores), under predictions_key(MEMO, target(corruption))
MEMO = "memo"
# GDA: f's predictions of the target images after GDA's guided diffusion (sda_core.gda), stored by its
# own stage (prediction stores), under predictions_key(GDA, target(corruption))
GDA = "gda"
# TENT: f adapted over each target set's stream of batches (sda_core.tent), stored by its own stage,
# under predictions_key(TENT, target(corruption))
TENT = "tent"


def covered_images(num_images: int, count: int | None) -> np.ndarray:
    """The positions in a set of `num_images` of the `count` images a method limited to that many covers
    (MEMO with memo.images, GDA with gda.images; None: all): evenly spaced over the set's order, so that
    a set stored class by class (ImageNet) keeps every class in proportion. The memo and gda stages
    predict these, and the scoring pairs the other methods' rows on them."""
    if count is None or count >= num_images:
        return np.arange(num_images)
    return np.arange(count) * num_images // count


def finetuned(variant: str | None = None) -> str:
    """f' (variant None) or one of its study variants: GENERATED_ONLY, GDA_ALIGNED, per_class(k), at_timestep(t)."""
    return FINETUNED if variant is None else f"{FINETUNED}-{variant}"


def per_class(images_per_class: int) -> str:
    """The variant fine-tuned on a class-balanced subset of the MoD set."""
    return f"{images_per_class}pc"


def at_timestep(t: int) -> str:
    """The variant fine-tuned on MoD made from timestep t (the matched-alignment study)."""
    return f"t{t}"


def target(corruption: str) -> str:
    return f"target/{corruption}"


def swept(process: str, t: int) -> str:
    """A reverse process of SWEPT_PROCESSES started from timestep t instead of its configured start."""
    if process not in SWEPT_PROCESSES:
        raise ValueError(f"the timestep study sweeps {', '.join(SWEPT_PROCESSES)}, not {process!r}")
    return f"{process}-t{t}"


def parse_process(name: str) -> tuple[str, int | None]:
    """A process name -> (its base process of PROCESSES, the start timestep of a swept one or None)."""
    base, _, t = name.partition("-t")
    if base not in PROCESSES or (t and (base not in SWEPT_PROCESSES or not t.isdigit())):
        raise ValueError(f"unknown reverse process {name!r}; valid: {', '.join(PROCESSES)}, or <unguided|dda>-t<t>")
    return base, int(t) if t else None


def per_image_adapted(method: str, images: str) -> str:
    """A target set (a corruption or a named target) as a per-image stage that stores its images adapted
    it (GDA: PerImageStage.stores_images): a set of one architecture's, since f guides the adaptation;
    scored by f' for "SDA on GDA" (sda_core.methods)."""
    return f"{method}/{images}"


def adapted(process: str, images: str) -> str:
    """A target set (a corruption, or CLEAN) after a reverse process."""
    parse_process(process)
    return f"{process}/{images}"


def predictions_key(model: str, image_set: str) -> str:
    return f"{model}/{image_set}"


def labels_key(image_set: str) -> str:
    return f"labels/{image_set}"


def question_key(question: str, model: str, image_set: str) -> str:
    """A vlm's probabilities over the candidates of a question other than its table question's
    (sda_core.data.questions), beside its table predictions in the same prediction file."""
    return predictions_key(f"{model}@{question}", image_set)


def question_labels_key(question: str, image_set: str) -> str:
    """The answers of a set's images to a question (indices of its candidates)."""
    return f"labels@{question}/{image_set}"


def image_set_of(key: str) -> str:
    """The image set a predictions or labels key is about."""
    return key.split("/", 1)[1]


@dataclass(frozen=True)
class SweepLevel:
    """A start timestep of the timestep study; `configured`: the configured DDA start, whose sets and
    fine-tuned model are the run's own ("dda/clean", f')."""

    t: int
    configured: bool = False

    def process(self, base: str) -> str:
        return base if self.configured else swept(base, self.t)

    @property
    def matched_model(self) -> str:
        """f'_t: fine-tuned on MoD made from this timestep."""
        return finetuned() if self.configured else finetuned(at_timestep(self.t))


def makes_synthetic_sets(config: dict) -> bool:
    """Whether a run makes the generated and MoD sets: unless every f' is a released one
    (architectures[].finetuned_weights) and no gate reads the generated set."""
    released = all(arch.get("finetuned_weights") for arch in config["architectures"])
    return not released or config["gates"]["generator_label_agreement"] is not None


@dataclass(frozen=True)
class RunImageSets:
    """The image sets a run makes and scores: every corruption, the clean set where there is one, and
    the sets and models of the studies (sda_core.studies): the clean set diffused from each level of
    `sweep` (with `matched`, scored by f'_t too), and the `variants` of f' scored on every DDA set."""

    corruptions: tuple[str, ...]
    has_clean: bool
    sweep: tuple[SweepLevel, ...] = ()
    matched: bool = False
    variants: tuple[str, ...] = ()
    diffpure: bool = True  # the DiffPure sets (diffpure.enabled)
    synthetic: bool = True  # the generated and MoD sets (not when every f' is a released one)

    @property
    def clean(self) -> list[str]:
        return [CLEAN] if self.has_clean else []

    def swept_levels(self) -> list[SweepLevel]:
        """The levels with sets of their own (not the configured start)."""
        return [level for level in self.sweep if not level.configured] if self.has_clean else []

    def processed(self) -> dict[str, list[str]]:
        """process -> the target sets (corruptions, CLEAN) it runs on."""
        processed = {
            "dda": [*self.corruptions, *self.clean],
            "diffpure": list(self.corruptions) if self.diffpure else [],
            "unguided": self.clean,
        }
        for level in self.swept_levels():
            processed.update({level.process(base): [CLEAN] for base in SWEPT_PROCESSES})
        return processed

    def groups(self) -> dict[str, list[str]]:
        """group -> its set names, in the order they are classified and stored."""
        groups = {SYNTHETIC_GROUP: [SYNTHETIC_GENERATED, SYNTHETIC_MOD]} if self.synthetic else {}
        swept_sets = [adapted(level.process(base), CLEAN) for level in self.swept_levels() for base in SWEPT_PROCESSES]
        for images in [*self.clean, *self.corruptions]:
            members = [CLEAN] if images == CLEAN else [target(images)]
            groups[images] = members + [
                adapted(process, images)
                for process, sets in self.processed().items()
                if images in sets and adapted(process, images) not in swept_sets
            ]
        if swept_sets:
            groups[TIMESTEPS_GROUP] = swept_sets
        return groups

    def models_of(self, image_set: str) -> list[str]:
        """The models that score an image set: f and f' everywhere; the variants on every corruption's
        DDA set; f'_t on the sets of the timestep study at t."""
        models = [SOURCE, FINETUNED]
        process, _, images = image_set.partition("/")
        if process == "dda" and images != CLEAN:
            models += list(self.variants)
        if self.matched:
            models += [
                level.matched_model
                for level in self.swept_levels()
                if image_set in [adapted(level.process(base), CLEAN) for base in SWEPT_PROCESSES]
            ]
        return models

    def models(self) -> list[str]:
        """Every model scored in the run."""
        return list(dict.fromkeys(model for name in self.names() for model in self.models_of(name)))

    def stores(
        self,
        generated: Callable[[], list[str]],
        mod: Callable[[], list[str]],
        target_store: Callable[[str], str],
        adapted_stores: Callable[[str, str], list[str]],
    ) -> dict[str, list[str]]:
        """set name -> its stores, from the workflow's path functions: the synthetic sets, clean, the
        corrupted targets, then the adapted sets (the order they are classified and stored in)."""
        stores = {SYNTHETIC_GENERATED: generated(), SYNTHETIC_MOD: mod()} if self.synthetic else {}
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
            rows += [target(corruption), adapted("dda", corruption)]
            rows += [adapted("diffpure", corruption)] if self.diffpure else []
        return rows + ([SYNTHETIC_GENERATED, SYNTHETIC_MOD] if self.synthetic else [])
