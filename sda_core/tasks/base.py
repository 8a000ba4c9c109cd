"""What a task is: the interface every task object fills in (sda_core.tasks registers them).

Everything that differs between tasks is asked of the run's task object, never read off the data
(the labels' shape) or the config in place: the label layout in stores, the generator's condition, the
model and its loss, the per-sample score, the aggregate of a table with its interval, the report's
captions, the preview and which optional parts of the workflow the task supports. Torch-free at import:
the workflow asks it while it parses; what needs torch is imported inside the methods.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sda_core.methods import PER_IMAGE_STAGES
from sda_core.store import LabelLayout

# The optional parts of a run a task may support (Task.supports): each -> the config keys that turn it on.
# The per-image methods (MEMO, GDA) name the tasks they support in their own registry entries.
OPTIONAL_PARTS = {
    "targets": lambda config: {"targets": bool(config["targets"])},
    "studies": lambda config: {f"studies.{name}": study["enabled"] for name, study in config["studies"].items()},
    "claims": lambda config: {},  # the claims table: made wherever the task supports it, no key of its own
    # a run without the DiffPure sets (its tables drop DiffPure's rows)
    "without_diffpure": lambda config: {"diffpure.enabled: false": not config["diffpure"]["enabled"]},
}


class Task:
    """One task (classification, segmentation): a subclass sets the class attributes and the methods."""

    name: ClassVar[str]
    metric: ClassVar[str]  # the tables' value column (and the sanity table's)
    metric_label: ClassVar[str]  # how the figures are named in logs and plots
    unit: ClassVar[str]  # what one sample of a set is: the tables' n counts these
    condition: ClassVar[str]  # what the generator is conditioned on
    no_label: ClassVar[int | None] = None  # a label value that marks no label (counts nowhere), if any
    supports: ClassVar[frozenset[str]]  # of OPTIONAL_PARTS
    captions: ClassVar[dict[str, str]]  # score output (table, paired, sanity, plot) -> report caption file
    preview_caption: ClassVar[str]

    # -- parse time ------------------------------------------------------------------------------------
    def model_params(self, arch: dict) -> dict:
        """What builds an architecture's model beyond its timm name and kwargs (config architectures[])."""
        raise NotImplementedError

    def problems(self, config: dict, specs: dict, data_classes: int) -> list[str]:
        """What a config asks of this task that it cannot do: optional parts it does not support, model
        settings of another task, a generator conditioned on another kind of label."""
        refused = [
            f"{name}.enabled"
            for name, stage in PER_IMAGE_STAGES.items()
            if config[name]["enabled"] and self.name not in stage.tasks
        ]
        refused += [
            key
            for part, switches in OPTIONAL_PARTS.items()
            if part not in self.supports
            for key, on in switches(config).items()
            if on
        ]
        problems = [f"{key}: not available for task {self.name} yet; turn it off" for key in refused]
        return problems + self.model_problems(config) + self.generator_problems(specs, data_classes)

    def model_problems(self, config: dict) -> list[str]:
        raise NotImplementedError

    def generator_problems(self, specs: dict, data_classes: int) -> list[str]:
        raise NotImplementedError

    # -- stores and data ---------------------------------------------------------------------------------
    def label_layout(self, image_size: int) -> LabelLayout:
        """How a store of images of `image_size` px holds this task's labels."""
        raise NotImplementedError

    def conditioning(self, num_classes: int, images_per_class: int, label_maps=None):
        """The labels the generator draws the synthetic set for (sda_core.jobs.sample): an object with
        count, labels(start, stop), layout(size), check(spec, size) and fingerprint()."""
        raise NotImplementedError

    def balanced_subset(self, labels: np.ndarray, images_per_class: int, num_classes: int) -> np.ndarray:
        """Store positions of the first `images_per_class` samples of every class (the set-size study)."""
        raise ValueError(f"images_per_class picks images by their class: task {self.name} has no class per image")

    def check_layout(self, layout: LabelLayout, data: str) -> None:
        """Refuse data whose labels are not held as this task holds them (a store of another task's)."""
        expected = self.label_layout(layout.shape[0] if layout.shape else 1)
        if layout != expected:
            raise ValueError(
                f"{data} holds labels of shape {layout.shape} ({layout.dtype}); task {self.name} expects "
                f"{expected.shape or 'one class'} ({expected.dtype}) per image"
            )

    def label_problem(self, labels: np.ndarray, num_classes: int) -> str | None:
        """The first sample whose labels are outside the classes (labels: a set's, in store order), or None."""
        wrong = ((labels < 0) | (labels >= num_classes)) & self.labelled(labels)
        if not wrong.any():
            return None
        first = int(np.flatnonzero(wrong.reshape(len(labels), -1).any(1))[0])
        values = sorted({int(v) for v in np.unique(labels[first][wrong[first]])})
        return f"image {first} has label value(s) {values}, outside the classes 0..{num_classes - 1}"

    def check_generator(self, spec: dict, data: str) -> None:
        """Refuse a generator spec that cannot be conditioned on the labels of `data` (a store)."""

    # -- models ------------------------------------------------------------------------------------------
    def create_model(self, timm_name: str, num_classes: int, timm_kwargs: dict | None, segmenter: dict | None = None):
        """A randomly initialised model of the task."""
        raise NotImplementedError

    def load_model(self, timm_name, num_classes, timm_kwargs, weights, segmenter=None, how_to_obtain: str = ""):
        """The task's model with its weights from a local file."""
        raise NotImplementedError

    def loss(self, logits, labels, label_smoothing: float = 0.0):
        """The training loss of a batch: its mean over the labels that count."""
        raise NotImplementedError

    def labelled(self, labels):
        """Which labels count: a bool array (numpy) or tensor (torch) of the labels' shape; every label but
        the task's `no_label` value."""
        if self.no_label is None:
            return labels == labels  # every label counts
        return labels != self.no_label

    def check_training(self, preprocess, layout: LabelLayout, slice_sizes: list[int], augment: str) -> None:
        """Refuse, before the first step, training settings the task's labels cannot be trained with."""

    def check_inputs(self, preprocess, layout: LabelLayout) -> None:
        """Refuse a preprocess the task's labels cannot be scored through (the predict stage)."""

    # -- scores ------------------------------------------------------------------------------------------
    def score(self, probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
        """The task's score of one set in percent."""
        raise NotImplementedError

    def score_summary(self, probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> str:
        """A one-line score for a log."""
        return f"{self.metric_label} {self.score(probabilities, labels, num_classes):.2f}%"

    def score_tables(self, **settings) -> None:
        """The score stage: the tables with intervals, the paired differences, the sanity table and the
        plot (rules/score.smk, sda_core.jobs.score)."""
        raise NotImplementedError

    def preview_rows(self, stores: dict[str, list[str]], corruptions: list[str], image_sets) -> dict:
        """The preview grid's rows: name -> (kind, stores, method), the same samples in each; kind "images"
        (a set's images), "labels" (its label maps) or "predicted" (what the method, (name, corruption),
        predicts); image_sets: the run's sda_core.image_sets.RunImageSets."""
        raise NotImplementedError

    def preview(self, rows: dict, prediction_files: dict[str, str], output: str, num_classes: int) -> None:
        """The preview stage (sda_core.previews draws it): rows as preview_rows makes them."""
        raise NotImplementedError
