"""Model kinds: what an architectures[] entry builds (its `kind`), one object each, registered in KINDS.

A kind owns what differs between models of one task: what builds its model (the params the training
and predict rules pass, apart from training settings), its training and predict jobs, the checks of
its config entry, the fine-tuned models it makes (f' and any control of its own) and the per-image
stages it cannot run (with the reason the parse-time refusal gives). Torch-free: the workflow asks it
while it parses; its jobs import torch.

- timm: a timm classifier (or, for task segmentation, a DeepLabV3 head on a timm backbone);
- vlm: a LLaVA answering questions from a closed set (sda_core.models.vlm, sda_core.jobs.vlm).

A new kind is a class here, a line in KINDS, its jobs and its schema section (docs/mllm.md says how
the vlm kind fits).
"""

from __future__ import annotations

from typing import ClassVar

from sda_core.image_sets import CLEAN, FINETUNED, LORA_ON_SOURCE, SOURCE, parse_process
from sda_core.methods import LORA_ON_SOURCE_ROWS


class ModelKind:
    name: ClassVar[str]
    tasks: ClassVar[frozenset[str]]
    train_job: ClassVar[str]  # "module:function", called with the training rule's arguments
    predict_job: ClassVar[str]  # "module:function", called with the predict rule's arguments
    refused_stages: ClassVar[dict[str, str]] = {}  # per-image stage -> why this kind cannot run it
    scored_rows: ClassVar[frozenset[str]] = frozenset()  # registry rows of its own (ScoredMethod.study)

    def params(self, arch: dict, config: dict) -> dict:
        """What builds the model (the rules' `model` param), apart from training settings."""
        raise NotImplementedError

    def model_arguments(self, model: dict) -> dict:
        """The training and predict jobs' arguments that say what the model is, from the `model` param."""
        return {"model": model}

    def job(self, which: str):
        """The job function named by `train_job` or `predict_job` (imported here: torch is imported there)."""
        from importlib import import_module

        module, function = getattr(self, which).split(":")
        return getattr(import_module(module), function)

    def finetune_settings(self, arch: dict) -> dict:
        """The settings of SDA's fine-tuning of this architecture (the finetune rule's `settings`)."""
        return arch["finetune"]

    def predict_settings(self, arch: dict) -> dict:
        """How its predictions are computed beyond the model (the predict rule's `settings`: arguments of
        its predict job), kept out of the model params so that changing them retrains nothing."""
        return {}

    def problems(self, arch: dict, config: dict, num_classes: int) -> list[str]:
        """What is wrong with the architecture's config entry for this kind."""
        return []

    def finetuned_models(self, run_models: list[str]) -> list[str]:
        """The fine-tuned models this kind makes of the run's (sda_core.studies: f' and its study variants)."""
        return run_models

    def controls(self) -> list[str]:
        """Fine-tuned models of the kind's own beside the run's (none for timm)."""
        return []

    def scoring_models(self, image_set: str, run_models: list[str]) -> list[str]:
        """The models that score an image set (sda_core.image_sets.RunImageSets.models_of: the run's)."""
        return run_models

    def side_questions(self, arch: dict, config: dict) -> list[str]:
        """The questions it answers beside its table's (a vlm's, sda_core.data.questions): sanity rows and gates."""
        return []


class TimmKind(ModelKind):
    name = "timm"
    tasks = frozenset({"classification", "segmentation"})
    train_job = "sda_core.jobs.train_model:train_models_job"
    predict_job = "sda_core.jobs.predict:predict_job"

    def params(self, arch: dict, config: dict) -> dict:
        return {"timm_name": arch["timm_name"], "timm_kwargs": arch["timm_kwargs"]}

    def model_arguments(self, model: dict) -> dict:
        return {
            "timm_name": model["timm_name"],
            "timm_kwargs": model["timm_kwargs"],
            "segmenter": model.get("segmenter"),
        }

    def problems(self, arch: dict, config: dict, num_classes: int) -> list[str]:
        problems = [f"architectures: {arch['name']}: vlm settings are for kind vlm"] if "vlm" in arch else []
        if "timm_name" not in arch:
            problems.append(f"architectures: {arch['name']}: kind timm needs timm_name")
        return problems


class VlmKind(ModelKind):
    name = "vlm"
    tasks = frozenset({"classification"})
    train_job = "sda_core.jobs.vlm:train_vlm_job"
    predict_job = "sda_core.jobs.vlm:predict_vlm_job"
    refused_stages = {
        "memo": "MEMO adapts a classifier's weights through the marginal entropy of its class outputs over "
        "AugMix views with batch-norm statistics; a LLaVA has no such head or normalisation",
        "gda": "GDA's guidance differentiates the classifier's marginal entropy through the diffusion; the "
        "closed-set scores of a LLaVA are one prefix and candidate pass per image, not that classifier",
        "tent": "TENT adapts normalisation affines by the entropy of class outputs over a stream; a LLaVA's "
        "layer norms and closed-set answers are not what it was defined on",
    }
    scored_rows = frozenset({LORA_ON_SOURCE_ROWS})
    # what builds a vlm (its model params); its LoRA recipe is SDA's fine-tuning, and how it scores the
    # candidates its predict settings
    MODEL_KEYS = ("weights", "questions", "tiny")
    PREDICT_KEYS = ("normalisation", "chunk", "batch_size")

    def params(self, arch: dict, config: dict) -> dict:
        world = config["world"]
        # the embedded worlds' images are square at their resolution; a LLaVA folder says its own size
        size = config[world]["resolution"] if world != "imagenet" else None
        return {
            "kind": self.name,
            "vlm": {key: arch["vlm"][key] for key in self.MODEL_KEYS},
            "world": world,
            "image_size": size,
        }

    def finetune_settings(self, arch: dict) -> dict:
        return {**arch["finetune"], "lora": arch["vlm"]["lora"]}

    def predict_settings(self, arch: dict) -> dict:
        return {key: arch["vlm"][key] for key in self.PREDICT_KEYS}

    def problems(self, arch: dict, config: dict, num_classes: int) -> list[str]:
        from sda_core.data.questions import question_problems

        name = arch["name"]
        if "vlm" not in arch:
            return [f"architectures: {name}: kind vlm needs a vlm section"]
        problems = [
            f"architectures: {name}: {key} is for kind timm"
            for key in ("timm_name", "timm_kwargs", "segmenter", "finetuned_weights", "weights")
            if arch.get(key)
        ]
        # what the classifiers' training loop does that a vlm's answer-token objective does not use
        for recipe in ("source_training", "finetune"):
            if arch[recipe]["label_smoothing"]:
                problems.append(f"architectures: {name}: {recipe}.label_smoothing: a vlm's answer-token loss has none")
            if arch[recipe]["augment"] != "none":
                problems.append(f"architectures: {name}: {recipe}.augment: a vlm trains on its own preprocessing")
        problems += question_problems(
            config["world"], arch["vlm"]["questions"], num_classes, f"architectures: {name}: vlm.questions"
        )
        embedded = config["world"] != "imagenet"
        if embedded and arch["vlm"]["weights"]:
            problems.append(
                f"architectures: {name}: vlm.weights: the {config['world']} world trains its tiny LLaVA here; "
                "leave it null"
            )
        if not embedded and not arch["vlm"]["weights"]:
            problems.append(
                f"architectures: {name}: vlm.weights: a LLaVA folder in the Hugging Face layout "
                "(e.g. llava-hf/llava-1.5-7b-hf)"
            )
        for stage, why in self.refused_stages.items():
            section = config.get(stage, {})
            if section.get("enabled") and name in (section.get("architectures") or []):
                problems.append(f"{stage}.architectures: {name} is a vlm: {why}")
        return problems

    def side_questions(self, arch: dict, config: dict) -> list[str]:
        from sda_core.data.questions import question_names

        return question_names(config["world"], arch["vlm"]["questions"])[1:]

    def finetuned_models(self, run_models: list[str]) -> list[str]:
        return [FINETUNED, *self.controls()]  # the studies' variants are the classifiers' (docs/mllm.md)

    def controls(self) -> list[str]:
        return [LORA_ON_SOURCE]

    def scoring_models(self, image_set: str, run_models: list[str]) -> list[str]:
        """f and f' where the run scores them; the control on the raw target sets and their DDA sets (the
        SDA recipe with the control in place of f')."""
        process, _, images = image_set.partition("/")
        if images and process not in ("target", "synthetic") and parse_process(process)[1] is not None:
            return []  # the timestep study's swept sets: the classifiers' study
        models = [model for model in run_models if model in (SOURCE, FINETUNED)]
        if process == "diffpure":
            models = [model for model in models if model == SOURCE]  # DiffPure's row reads f alone
        if process in ("target", "dda") and images and images != CLEAN:
            models.append(LORA_ON_SOURCE)
        return models


KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (TimmKind(), VlmKind())}


def kind_named(name: str) -> ModelKind:
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; valid: {', '.join(KINDS)}")
    return KINDS[name]


def kind_of(arch: dict) -> ModelKind:
    return kind_named(arch.get("kind", "timm"))


def kind_problems(config: dict, num_classes: int) -> list[str]:
    """Every architecture's problems for its kind, kinds the run's task has no model of, and the
    classifiers' timestep study in a run without a classifier."""
    problems = []
    timesteps = config["studies"]["timesteps"]["enabled"]
    if timesteps and all(kind_of(arch).name == "vlm" for arch in config["architectures"]):
        problems.append(
            "studies.timesteps: the timestep study scores the classifiers (kind timm) and this run has none; "
            "set studies.timesteps.enabled: false"
        )
    for arch in config["architectures"]:
        kind = kind_of(arch)
        if config["task"] not in kind.tasks:
            problems.append(f"architectures: {arch['name']}: kind {kind.name} has no model for task {config['task']}")
        problems += kind.problems(arch, config, num_classes)
    return problems


def stage_architectures(config: dict, stage: str) -> list[str]:
    """The architectures a per-image stage runs for: those it is enabled and chosen for whose kind can
    run it (null `architectures`: every such one)."""
    section = config[stage]
    if not section["enabled"]:
        return []
    chosen = section.get("architectures")
    return [
        arch["name"]
        for arch in config["architectures"]
        if (chosen is None or arch["name"] in chosen) and stage not in kind_of(arch).refused_stages
    ]
