"""Segmentation: a label map per image (IGNORE_INDEX pixels count nowhere), a DeepLabV3 on a timm
backbone (sda_core.models.segmenters), mIoU with a bootstrap over scenes (sda_core.segmentation)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sda_core.models.specs import mask_classes, resolve_spec
from sda_core.models.specs import num_classes as spec_classes
from sda_core.store import IGNORE_INDEX, LabelLayout
from sda_core.tasks.base import Task


@dataclass(frozen=True)
class MapConditioning:
    """The synthetic set of a mask-conditioned generator: sample k is drawn for label map k of `maps`
    (an object with count, resolution and maps(start, stop); the world makes them)."""

    maps: object

    @property
    def count(self) -> int:
        return self.maps.count

    def labels(self, start: int, stop: int) -> np.ndarray:
        return self.maps.maps(start, stop)

    def layout(self, image_size: int) -> LabelLayout:
        return Segmentation().label_layout(image_size)

    def check(self, spec: dict, image_size: int) -> None:
        Segmentation().check_generator(spec, "the generated label maps")
        if self.maps.resolution != image_size:
            raise ValueError(f"label maps of {self.maps.resolution} px for a generator of {image_size} px")

    def fingerprint(self) -> dict:
        return {"label_maps": dataclasses.asdict(self.maps)}


class Segmentation(Task):
    name = "segmentation"
    metric = "miou"
    metric_label = "mIoU"
    unit = "scenes"
    condition = "label maps"
    no_label = IGNORE_INDEX  # PASCAL VOC's void: counts nowhere, in training or scores
    supports = frozenset()
    captions = {
        "table": "miou.rst",
        "paired": "paired_miou.rst",
        "sanity": "sanity_miou.rst",
        "plot": "plot_miou.rst",
    }
    preview_caption = "preview_segmentation.rst"

    def model_params(self, arch: dict) -> dict:
        return {"segmenter": arch["segmenter"]}  # present: model_problems

    def model_problems(self, config: dict) -> list[str]:
        problems = []
        for arch in config["architectures"]:
            if "segmenter" not in arch:
                problems.append(f"architectures: {arch['name']}: a segmenter needs its segmenter settings")
                continue
            from sda_core.models.segmenters import feature_index_problem  # torch and timm: segmentation only

            try:
                problem = feature_index_problem(
                    arch["timm_name"], arch["timm_kwargs"] or {}, arch["segmenter"]["feature_index"]
                )
            except Exception:  # an unknown timm name: reported where the model is built, with close matches
                problem = None
            if problem:
                problems.append(f"architectures: {arch['name']}: {problem}")
        return problems

    def generator_problems(self, specs: dict, data_classes: int) -> list[str]:
        if "generator" not in specs:
            return []
        if resolve_spec(specs["generator"])["arch"] != "adm":
            return [
                "denoisers.generator.spec: a DiT cannot condition on label maps; a segmentation generator is an "
                "ADM with mask_classes (sda_core.models.specs)"
            ]
        problems = []
        if spec_classes(specs["generator"]) is not None:
            problems.append(
                "denoisers.generator.spec: num_classes is set, but a segmentation generator is conditioned on "
                "label maps (mask_classes) only"
            )
        classes = mask_classes(specs["generator"])
        if classes != data_classes:
            problems.append(
                f"denoisers.generator.spec: conditioned on label maps of {classes} classes (mask_classes), "
                f"the data has {data_classes}"
            )
        return problems

    def label_layout(self, image_size: int) -> LabelLayout:
        return LabelLayout((image_size, image_size), "uint8", IGNORE_INDEX)  # unwritten pixels: no label

    def conditioning(self, num_classes: int, images_per_class: int, label_maps=None) -> MapConditioning:
        if label_maps is None:
            raise ValueError("a segmentation run draws its synthetic set for label maps: none were given")
        return MapConditioning(label_maps)

    def check_generator(self, spec: dict, data: str) -> None:
        if not mask_classes(spec):
            raise ValueError(f"{data}: conditioning on label maps needs a generator with mask_classes in its spec")

    def create_model(self, timm_name, num_classes, timm_kwargs, segmenter=None):
        from sda_core.models.segmenters import create_segmenter

        return create_segmenter(self._spec(timm_name, num_classes, timm_kwargs, segmenter))

    def load_model(self, timm_name, num_classes, timm_kwargs, weights, segmenter=None, how_to_obtain=""):
        from sda_core.models.segmenters import load_segmenter

        return load_segmenter(self._spec(timm_name, num_classes, timm_kwargs, segmenter), weights, how_to_obtain)

    @staticmethod
    def _spec(timm_name: str, num_classes: int, timm_kwargs: dict | None, segmenter: dict | None):
        from sda_core.models.segmenters import SegmenterSpec

        if segmenter is None:
            raise ValueError("a segmenter needs its segmenter settings (feature_index, atrous_rates, ...)")
        settings = {key: tuple(value) if isinstance(value, list) else value for key, value in segmenter.items()}
        return SegmenterSpec(timm_name, num_classes, dict(timm_kwargs or {}), **settings)

    def loss(self, logits, labels, label_smoothing: float = 0.0):
        """Mean cross-entropy over the labelled pixels, as torchvision's segmentation references; 0 for
        maps without a labelled pixel (torch's mean would divide by zero)."""
        from torch import nn

        total = nn.functional.cross_entropy(
            logits, labels, ignore_index=self.no_label, label_smoothing=label_smoothing, reduction="sum"
        )
        return total / self.labelled(labels).sum().clamp(min=1)

    def check_training(self, preprocess, layout: LabelLayout, slice_sizes: list[int], augment: str) -> None:
        self.check_inputs(preprocess, layout)
        if augment != "none":
            raise ValueError("images with label maps are not augmented: a geometric transform would misalign them")
        # A DeepLabV3's ASPP pools each image to 1x1 before a BatchNorm, which needs two values per channel:
        # a slice of one image would stop the training midway, so refuse it before the first step.
        if 1 in slice_sizes:
            raise ValueError(
                "a training batch (or micro-batch) of one image: a DeepLabV3's pooled ASPP branch needs at least "
                "two for its batch norm; choose batch_size (and micro_batch_size) so that no batch holds one image"
            )

    def check_inputs(self, preprocess, layout: LabelLayout) -> None:
        """Label maps are used as stored: refuse a preprocess that resizes or crops their images (the
        logits would show another part of the image than the map labels)."""
        if not preprocess.resize == preprocess.crop == layout.shape[0] == layout.shape[1]:
            raise ValueError(
                f"label maps of shape {tuple(layout.shape)} need classifier_input resize and crop equal to their "
                f"side, got resize {preprocess.resize}, crop {preprocess.crop}"
            )

    def score(self, probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
        from sda_core.segmentation import confusions, mean_iou

        return mean_iou(confusions(probabilities.argmax(1), labels, num_classes))

    def score_tables(self, **settings) -> None:
        from sda_core.scoring.miou import score_miou

        score_miou(**settings)

    def preview_rows(self, stores: dict[str, list[str]], corruptions: list[str], image_sets) -> dict:
        """The clean scenes and their maps; per shown corruption its images, their DDA adaptation, and the
        maps Source and SDA predict."""
        from sda_core.image_sets import CLEAN, adapted, target

        rows = {"clean": ("images", stores[CLEAN], ()), "label maps": ("labels", stores[CLEAN], ())}
        for c in corruptions:
            rows[c] = ("images", stores[target(c)], ())
            rows[f"{c}, DDA"] = ("images", stores[adapted("dda", c)], ())
            for name in ("Source", "SDA"):
                rows[f"{c}: {name}"] = ("predicted", None, (name, c))
        return rows

    def preview(self, rows: dict, prediction_files: dict[str, str], output: str, num_classes: int) -> None:
        from sda_core.previews import map_grid

        map_grid(rows, prediction_files, output, num_classes)
