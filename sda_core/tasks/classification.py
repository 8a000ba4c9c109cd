"""Classification: a class per image, a timm classifier, top-1 with Wilson intervals over images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sda_core.models.specs import num_classes as spec_classes
from sda_core.models.specs import resolve_spec
from sda_core.store import CLASS_LABELS, LabelLayout
from sda_core.tasks.base import Task


def sample_labels(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """The conditioning label of each global sample index: classes interleaved, so any shard is balanced."""
    return (indices % num_classes).astype(np.int64)


def class_balanced_subset(labels: np.ndarray, images_per_class: int, num_classes: int) -> np.ndarray:
    """Indices of the first `images_per_class` images of every class, in store order; a class with
    fewer raises (the subset would not be balanced)."""
    keep = []
    for label in range(num_classes):
        indices = np.flatnonzero(labels == label)
        if len(indices) < images_per_class:
            raise ValueError(f"class {label} has {len(indices)} images, fewer than the {images_per_class} asked for")
        keep.append(indices[:images_per_class])
    return np.sort(np.concatenate(keep))


@dataclass(frozen=True)
class ClassConditioning:
    """The synthetic set of a class-conditional generator: sample k is drawn for class k mod num_classes."""

    num_classes: int
    images_per_class: int

    @property
    def count(self) -> int:
        return self.num_classes * self.images_per_class

    def labels(self, start: int, stop: int) -> np.ndarray:
        return sample_labels(np.arange(start, stop), self.num_classes)

    def layout(self, image_size: int) -> LabelLayout:
        return CLASS_LABELS

    def check(self, spec: dict, image_size: int) -> None:
        pass

    def fingerprint(self) -> dict:
        return {}


class Classification(Task):
    name = "classification"
    metric = "top1"
    metric_label = "top-1"
    unit = "images"
    condition = "classes"
    no_label = None  # every class counts (ImageNet's class 255 too)
    supports = frozenset({"targets", "studies", "claims", "without_diffpure"})
    captions = {"table": "accuracy.rst", "paired": "paired.rst", "sanity": "sanity.rst", "plot": "plot.rst"}
    preview_caption = "preview.rst"

    def model_params(self, arch: dict) -> dict:
        return {}  # a classifier's params name no head: as before the task existed

    def model_problems(self, config: dict) -> list[str]:
        return [
            f"architectures: {arch['name']}: segmenter is for task segmentation"
            for arch in config["architectures"]
            if "segmenter" in arch
        ]

    def generator_problems(self, specs: dict, data_classes: int) -> list[str]:
        if "generator" not in specs:
            return []
        classes = spec_classes(specs["generator"])
        if classes == data_classes:
            return []
        key = "num_classes" if resolve_spec(specs["generator"])["arch"] == "adm" else "num_embeds_ada_norm"
        return [f"denoisers.generator.spec: conditioned on {classes} classes ({key}), the data has {data_classes}"]

    def label_layout(self, image_size: int) -> LabelLayout:
        return CLASS_LABELS  # int64 classes, -1 before a row is written

    def conditioning(self, num_classes: int, images_per_class: int, label_maps=None) -> ClassConditioning:
        if label_maps is not None:
            raise ValueError("a classification run draws its synthetic set for classes, not for label maps")
        return ClassConditioning(num_classes, images_per_class)

    def balanced_subset(self, labels: np.ndarray, images_per_class: int, num_classes: int) -> np.ndarray:
        return class_balanced_subset(labels, images_per_class, num_classes)

    def create_model(self, timm_name, num_classes, timm_kwargs, segmenter=None):
        from sda_core.models.classifiers import create_classifier

        _no_segmenter(segmenter)
        return create_classifier(timm_name, num_classes, timm_kwargs)

    def load_model(self, timm_name, num_classes, timm_kwargs, weights, segmenter=None, how_to_obtain=""):
        from sda_core.models.classifiers import load_classifier

        _no_segmenter(segmenter)
        return load_classifier(timm_name, num_classes, timm_kwargs, weights, how_to_obtain)

    def loss(self, logits, labels, label_smoothing: float = 0.0):
        from torch import nn

        return nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    def score(self, probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
        return 100 * float(np.mean(probabilities.argmax(1) == labels))

    def score_tables(self, **settings) -> None:
        from sda_core.scoring.accuracy import score_accuracy

        score_accuracy(**settings)

    def preview_rows(self, stores: dict[str, list[str]], corruptions: list[str], image_sets) -> dict:
        return {name: ("images", stores[name], ()) for name in image_sets.preview_rows(corruptions)}

    def preview(self, rows: dict, prediction_files: dict[str, str], output: str, num_classes: int) -> None:
        from sda_core.previews import image_grid

        image_grid({name: stores for name, (_, stores, _) in rows.items()}, output)


def _no_segmenter(segmenter: dict | None) -> None:
    if segmenter is not None:
        raise ValueError("segmenter settings are for task segmentation; a classifier takes none")
