"""Every scored method of a run, one registry: what a table column, a plot bar, a paired comparison and
the README tool are derived from. A method is a fusion of stored predictions (sda_core.ensemble.Method);
where its predictions come from a per-image stage of its own (MEMO adapts f to each target image, GDA
adapts each image under f's guidance), that stage is an entry of PER_IMAGE_STAGES, whose config section
switches it on and whose one rule and one job skeleton (rules/per_image.smk, sda_core/jobs/per_image.py)
run it. Torch-free: the workflow reads it while it parses.

Adding a per-image baseline: its module (a `per_image_predictor` factory, as sda_core/memo.py has), a
PER_IMAGE_STAGES entry, its SCORED_METHODS entries and comparisons, and its config section in the
schema (docs/adding-a-method.md).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from sda_core.ensemble import FUSION_LABELS, Method
from sda_core.image_sets import (
    GDA,
    GDA_ALIGNED,
    LORA_ON_SOURCE,
    MEMO,
    SOURCE,
    TENT,
    adapted,
    finetuned,
    per_image_adapted,
    target,
)
from sda_core.models.specs import resolve_spec

LORA_ON_SOURCE_ROWS = "lora_on_source"  # its rows' switch (ScoredMethod.study): on where a vlm is run

dda = partial(adapted, "dda")


@dataclass(frozen=True)
class PerImageStage:
    """A stage that predicts each target image on its own, writing prediction stores per architecture,
    target set and shard (rules/per_image.smk, sda_core/jobs/per_image.py). Its name is its config
    section (`<name>.enabled`, `.images`, `.batch_size`, `.shards`, optionally `.architectures`), its
    stores' folder and its predictions' model name (sda_core.image_sets)."""

    name: str
    predictor: str  # "module:function" building its PerImagePredictor in the job (torch there, not here)
    tasks: frozenset[str]  # the tasks it can run for (sda_core.tasks)
    settings: Callable[[dict, dict], dict]  # (config, architecture) -> its settings, the rule's params
    files: Callable[[dict], dict[str, str]] = lambda config: {}  # config files it reads, by name
    reads_denoiser: bool = False  # it runs the unconditional denoiser (its weights are an input)
    # a stream method (TENT): its predictor carries its state from batch to batch over each target set,
    # in a seeded order, reset between sets; one shard per set, and a resumed set is recomputed whole
    stream: bool = False
    # it adapts the images themselves (GDA) and stores them beside its predictions, so that other models
    # classify them (image_sets.per_image_adapted: f' for "SDA on GDA"); its predictor's adapted_images
    stores_images: bool = False

    def __post_init__(self):
        if self.stream and self.stores_images:
            raise ValueError(f"{self.name}: a stream stage's images are not stored (nothing reads them)")

    def architectures(self, config: dict) -> list[str]:
        """The architectures the run makes it for: none unless enabled; those of `architectures` if set,
        of a kind that can run it (sda_core.models.kinds: a vlm cannot run MEMO, GDA or TENT)."""
        from sda_core.models.kinds import stage_architectures

        return stage_architectures(config, self.name)


@dataclass
class PerImagePredictor:
    """What a per-image stage's module builds for its job: `probabilities(images, generators, where)` of
    a batch of uint8 NHWC images, each with its own generator (a torch tensor (n, classes), checked for
    non-finite values by the job); `fingerprint`, what its predictions depend on beyond the images and
    their seeds; `checked`, the models a non-finite output names; `report()`, text for the chunk's log;
    `reset()`, for a stream stage, the start of a new stream (a target set); for a stage that stores its
    images (PerImageStage.stores_images), `adapted_images()`: the uint8 NHWC images the last
    `probabilities` call classified, of `image_size` pixels square."""

    probabilities: Callable
    fingerprint: dict
    description: str
    checked: str
    report: Callable[[], str] = lambda: ""
    reset: Callable[[], None] = lambda: None  # a stream method's return to the source state
    adapted_images: Callable[[], np.ndarray] | None = None
    image_size: int | None = None


def _memo_settings(config: dict, arch: dict) -> dict:
    """MEMO's settings for an architecture (sda_core.memo.MemoSettings): the method's, its optimiser."""
    return {**{key: config["memo"][key] for key in ("views", "steps", "prior_strength")}, **arch["memo"]}


def _gda_settings(config: dict, arch: dict) -> dict:
    """GDA's settings (sda_core.gda.GdaSettings), the CLIP model, and how the denoiser runs."""
    gda = config["gda"]
    keys = ("respacing", "steps", "objective", "views", "entropy_weight", "pixel_weight", "vgg_weight", "clip_weight")
    method = {key: gda[key] for key in keys} | {
        "clip_cutouts": gda["clip"]["cutouts"],
        "clip_prompt": gda["clip"]["prompt"],
    }
    return {
        "method": method,
        "spec": resolve_spec(config["denoisers"]["unconditional"]["spec"]),
        "clip_model": gda["clip"]["model"],
        "precision": config["precision"],
        "compile_mode": config["compile"],
    }


def _gda_files(config: dict) -> dict[str, str]:
    """VGG-19 and CLIP, where their terms are on."""
    gda = config["gda"]
    return {
        **({"vgg": gda["vgg"]} if gda["vgg_weight"] else {}),
        **({"clip": gda["clip"]["weights"]} if gda["clip_weight"] else {}),
    }


def _tent_settings(config: dict, arch: dict) -> dict:
    """TENT's settings (sda_core.tent.TentSettings); its batch size is the stage's `batch_size`."""
    return {key: config["tent"][key] for key in ("lr", "momentum", "steps")}


PER_IMAGE_STAGES: dict[str, PerImageStage] = {
    stage.name: stage
    for stage in (
        PerImageStage(MEMO, "sda_core.memo:per_image_predictor", frozenset({"classification"}), _memo_settings),
        PerImageStage(
            GDA,
            "sda_core.gda:per_image_predictor",
            frozenset({"classification"}),
            _gda_settings,
            _gda_files,
            reads_denoiser=True,
            stores_images=True,
        ),
        PerImageStage(
            TENT, "sda_core.tent:per_image_predictor", frozenset({"classification"}), _tent_settings, stream=True
        ),
    )
}


@dataclass(frozen=True)
class ScoredMethod:
    name: str  # the table's method column
    method: Method  # its fusion of stored predictions
    stage: str | None = None  # the per-image stage whose predictions it reads (None: the predict stage's only)
    plotted: bool = True  # a bar of the per-corruption plot
    study: str | None = None  # the study (sda_core.studies.Studies.scored) it belongs to; None: always scored


_gda_adapted = partial(per_image_adapted, GDA)


def _ensemble(model: str, fusion: str = "sum") -> Method:
    """f on the raw image fused with `model` on the DDA image."""
    return Method(((SOURCE, target), (model, dda)), fusion)


# In the tables' order.
SCORED_METHODS: tuple[ScoredMethod, ...] = (
    ScoredMethod("Source", Method(((SOURCE, target),))),
    ScoredMethod("DiffPure", Method(((SOURCE, partial(adapted, "diffpure")),))),
    ScoredMethod("DDA", _ensemble(SOURCE)),  # self-ensemble
    ScoredMethod("SDA", _ensemble(finetuned())),
    ScoredMethod("DDA (adapted only)", Method(((SOURCE, dda),))),
    ScoredMethod("SDA (adapted only)", Method(((finetuned(), dda),))),
    # MEMO's predictions of the raw target image (sda_core.memo)
    ScoredMethod("MEMO", Method(((MEMO, target),)), stage=MEMO),
    # GDA's predictions of the target image after its guided diffusion (sda_core.gda), and its code's
    # optional ensemble: of the raw image's and the adapted image's predictions, the one of lower entropy
    ScoredMethod("GDA", Method(((GDA, target),)), stage=GDA),
    ScoredMethod("GDA (ensemble)", Method(((SOURCE, target), (GDA, target)), "entropy_select"), GDA, plotted=False),
    # SDA stacked on GDA: f on the raw image with f' on GDA's adapted image (GDA's in place of DDA's)
    ScoredMethod("SDA on GDA", Method(((SOURCE, target), (finetuned(), _gda_adapted))), GDA),
    # the same with f' aligned to GDA's own synthetic domain (MoD by GDA's reverse process: studies.gda_aligned)
    ScoredMethod(
        "SDA on GDA (f'_GDA)",
        Method(((SOURCE, target), (finetuned(GDA_ALIGNED), _gda_adapted))),
        GDA,
        plotted=False,
        study="gda_aligned",
    ),
    # TENT's predictions of the target images over its stream (sda_core.tent)
    ScoredMethod("TENT", Method(((TENT, target),)), stage=TENT),
    # a vlm's control (sda_core.models.kinds): f' made by the same LoRA recipe on the real source images
    # instead of the MoD set, in SDA's ensemble and alone on the raw image; SDA minus it is the gain of
    # the synthetic domain over merely learning the answer format
    ScoredMethod("LoRA on source", _ensemble(LORA_ON_SOURCE), study=LORA_ON_SOURCE_ROWS),
    ScoredMethod(
        "LoRA on source (target only)", Method(((LORA_ON_SOURCE, target),)), plotted=False, study=LORA_ON_SOURCE_ROWS
    ),
)
METHODS: dict[str, Method] = {entry.name: entry.method for entry in SCORED_METHODS}
# (first, second): the differences of the paired tables (first minus second), the paper's claims first;
# each made wherever both methods are
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("SDA", "DDA"),
    ("DDA", "Source"),
    ("SDA", "Source"),
    ("DiffPure", "Source"),
    ("MEMO", "Source"),
    ("SDA", "MEMO"),
    ("GDA", "Source"),
    ("SDA", "GDA"),
    ("GDA (ensemble)", "GDA"),
    ("SDA on GDA", "GDA"),
    ("SDA on GDA", "SDA"),
    ("SDA on GDA (f'_GDA)", "SDA on GDA"),
    ("SDA on GDA (f'_GDA)", "GDA"),
    ("TENT", "Source"),
    ("SDA", "TENT"),
    ("SDA", "LoRA on source"),
    ("LoRA on source", "DDA"),
    ("LoRA on source (target only)", "Source"),
)
# the columns of the paper's table, in its order (the README's main table; the others follow it)
PAPER_COLUMNS = ("Source", "MEMO", "DiffPure", "GDA", "DDA", "SDA")


def reference_methods(
    stages: Collection[str] = frozenset(), studies: Collection[str] = frozenset()
) -> dict[str, Method]:
    """The registry's methods whose per-image stage, if any, is among `stages` and whose study, if any, is
    among `studies`, in the tables' order."""
    return {
        entry.name: entry.method
        for entry in SCORED_METHODS
        if (entry.stage is None or entry.stage in stages) and (entry.study is None or entry.study in studies)
    }


def stage_methods(stage: str) -> set[str]:
    """The methods that read a per-image stage's predictions."""
    return {entry.name for entry in SCORED_METHODS if entry.stage == stage}


def reads_only(method: Method, processes: Collection[str]) -> bool:
    """Whether every adapted set a method reads is made by one of `processes` (raw target sets always are,
    and a per-image stage's own adapted sets are, where its method is run at all)."""
    made = ("target", *processes, *(name for name, stage in PER_IMAGE_STAGES.items() if stage.stores_images))
    return all(images.split("/")[0] in made for images in (term("x") for _, term in method.terms))


def run_methods(
    variants: Mapping[str, str],
    fusions: bool,
    per_image: Mapping[str, Sequence[str]] | None = None,
    processes: Collection[str] | None = None,
    studies: Collection[str] = frozenset(),
) -> tuple[dict[str, Method], list[tuple[str, str]]]:
    """The methods and comparisons of a run: the registry's (those of the per-image stages it made
    included; per_image: stage -> the architectures it made predictions for; processes: the reverse
    processes it runs on its target sets, None: all, e.g. without diffpure when diffpure.enabled is
    false; studies: those whose registry rows it scores, Studies.scored); an SDA row per fine-tuning
    variant (label -> model, e.g. "SDA (f_c')" -> the model fine-tuned on the generated images),
    compared with SDA and with DDA; with `fusions`, DDA and SDA under every other fusion, each compared
    with its sum."""
    methods = reference_methods({stage for stage, archs in (per_image or {}).items() if archs}, studies)
    if processes is not None:
        methods = {name: method for name, method in methods.items() if reads_only(method, processes)}
    comparisons = [(a, b) for a, b in COMPARISONS if a in methods and b in methods]
    for label, model in variants.items():
        methods[label] = _ensemble(model)
        comparisons += [("SDA", label), (label, "DDA")]
    if fusions:
        for name, model in (("DDA", SOURCE), ("SDA", finetuned())):
            for fusion, suffix in FUSION_LABELS.items():
                methods[f"{name} ({suffix})"] = _ensemble(model, fusion)
                comparisons.append((f"{name} ({suffix})", name))
    return methods, comparisons


def not_run(
    archs: list[str],
    per_image: Mapping[str, Sequence[str]] | None = None,
    models: Mapping[str, Collection[str]] | None = None,
    methods: Mapping[str, Method] | None = None,
) -> dict[str, set[str]]:
    """arch -> the methods not made for it: those of the per-image stages not made for it (e.g.
    gda.architectures, or a vlm), and of `methods` (the run's) those reading a model its kind does not
    make (models: arch -> the models it has, sda_core.models.kinds; a vlm has no study variants of f',
    a classifier no LoRA on source)."""
    missing = {
        arch: {name for stage, made in (per_image or {}).items() if arch not in made for name in stage_methods(stage)}
        for arch in archs
    }
    for arch in archs:
        if models is None or arch not in models:
            continue
        missing[arch] |= {
            name
            for name, method in (methods or METHODS).items()
            if any(model not in models[arch] and model not in PER_IMAGE_STAGES for model, _ in method.terms)
        }
    return missing


PLOTTED_METHODS = [entry.name for entry in SCORED_METHODS if entry.plotted]
