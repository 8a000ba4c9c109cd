"""Stages of a vlm architecture (sda_core.models.kinds.VlmKind): training (the embedded worlds' tiny LLaVA
from scratch as question answering; SDA's LoRA fine-tuning on the MoD set and the LoRA-on-source control)
and prediction (closed-set probabilities over the table question's candidates, the record a classifier's
predict stage writes).

The model params (the rules' `model`, VlmKind.params): {kind, vlm: {weights, questions, normalisation,
chunk, batch_size, tiny}, world, image_size}. A trained tiny LLaVA is one safetensors file of its
weights, its vocabulary in the metadata; f' and the control are LoRA adapters on it (safetensors,
sda_core.models.vlm.save_lora).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sda_core.checkpoints import CheckpointError, load_state, read_state_dict, save_weights
from sda_core.data.questions import Question, questions_of, vocabulary
from sda_core.finite import check_finite
from sda_core.image_sets import CLEAN, labels_key, predictions_key, question_key, question_labels_key
from sda_core.loading import StoreRows, WaitClock, batch_loader
from sda_core.model_training import TrainSettings, train_model
from sda_core.models.classifiers import Preprocess
from sda_core.models.vlm import (
    ClosedSetPrompt,
    answering_loss,
    closed_set_probabilities,
    closed_set_prompt,
    load_lora,
    safetensors_metadata,
    save_lora,
    tiny_llava,
    with_lora,
    word_tokenizer,
)
from sda_core.pixels import to_unit
from sda_core.precision import autocast, set_up_precision
from sda_core.store import StoreSequence
from sda_core.tasks import task_named

log = logging.getLogger(__name__)

# OpenAI CLIP's normalisation, LLaVA-1.5's vision tower's (its image processor's image_mean / image_std)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Answerer:
    """A LLaVA with what it asks: its tokenizer, its questions (the first the table's) and their prompts."""

    model: torch.nn.Module
    tokenizer: object
    questions: list[Question]
    prompts: list[ClosedSetPrompt]
    preprocess: Preprocess

    def answers(self, labels: torch.Tensor) -> list[list[int]]:
        return [question.answers(labels.tolist()) for question in self.questions]

    def loss(self, model, x, y):
        """train_model's objective: cross-entropy on the answer tokens of every question."""
        return answering_loss(model, self.prompts, self.answers(y), x, self.tokenizer.pad_token_id)


def model_questions(model: dict) -> list[Question]:
    return questions_of(model["world"], model["vlm"]["questions"])


def tiny_answerer(model: dict) -> Answerer:
    """The embedded worlds' tiny LLaVA with random weights (seed first: they are part of the result)."""
    questions = model_questions(model)
    tokenizer = word_tokenizer(vocabulary(questions))
    tiny = model["vlm"]["tiny"]
    llava = tiny_llava(tokenizer, model["image_size"], tiny["patch_size"], tiny["vision"], tiny["text"])
    prompts = [closed_set_prompt(tokenizer, q.template, q.candidates, llava.config.image_seq_length) for q in questions]
    size = model["image_size"]
    return Answerer(llava, tokenizer, questions, prompts, Preprocess(size, size, mean=CLIP_MEAN, std=CLIP_STD))


def load_source(model: dict, weights: str, how_to_obtain: str = "") -> Answerer:
    """The source LLaVA: the tiny one with its trained weights (its vocabulary checked against the
    questions'), or a Hugging Face LLaVA folder."""
    if model["vlm"]["weights"]:
        raise NotImplementedError("a LLaVA folder in the Hugging Face layout is not read yet (docs/mllm.md)")
    answerer = tiny_answerer(model)
    state = read_state_dict(weights, how_to_obtain)
    trained_with = safetensors_metadata(weights).get("vocabulary")
    expected = json.dumps(vocabulary(answerer.questions))
    if trained_with != expected:
        raise CheckpointError(
            f"{weights} was trained with the vocabulary {trained_with}, these questions need {expected}: "
            "vlm.questions changed since; retrain the source model"
        )
    load_state(answerer.model, state, weights)
    return answerer


def train_vlm_model(
    stores: list[str],
    output: str,
    model: dict,
    settings: dict,
    seed: int,
    device: torch.device,
    init_weights: str | None = None,
    images_per_class: int | None = None,
    precision: str = "auto",
    threads: int = 1,
    workers: int | None = None,
    task: str = "classification",
    num_classes: int | None = None,
    preprocess: dict | None = None,
) -> None:
    """A LLaVA trained on every question of every image with cross-entropy on the answer tokens: from
    scratch (init_weights None: the tiny LLaVA's pre-training on the source split, all its weights), or
    LoRA adapters on the source LLaVA of init_weights (SDA's f' on the MoD set, the control on the source
    images). preprocess: the classifiers' (unused: a LLaVA has its own)."""
    if images_per_class is not None:
        raise ValueError("a vlm is not fine-tuned on class-balanced subsets (the set-size study is the classifiers')")
    precision = set_up_precision(precision, device)
    run_task = task_named(task)
    data = StoreRows(stores)
    torch.manual_seed(seed)
    answerer = tiny_answerer(model) if init_weights is None else load_source(model, init_weights)
    lora = settings.get("lora")
    trained = answerer.model if init_weights is None else with_lora(answerer.model, lora)
    train_settings = TrainSettings.from_config({k: v for k, v in settings.items() if k != "lora"}, seed)
    questions = ", ".join(q.name for q in answerer.questions)
    log.info(
        "LLaVA on %d images, questions %s (%s), precision %s",
        len(data),
        questions,
        "from scratch" if init_weights is None else f"LoRA rank {lora['rank']} on {init_weights}",
        precision,
    )
    train_model(
        trained,
        data,
        train_settings,
        answerer.preprocess,
        device,
        name=f"LLaVA ({output})",
        precision=precision,
        threads=threads,
        workers=workers,
        task=run_task,
        objective=answerer.loss,
    )
    metadata = {"kind": "vlm", "vocabulary": json.dumps(vocabulary(answerer.questions)), "precision": precision}
    if init_weights is None:
        save_weights(trained, output, metadata=metadata)
    else:
        save_lora(trained, output, {**metadata, "base": str(init_weights)})


def train_vlm_job(trainings, init_weights: str | None = None, **common) -> None:
    """The training rule's job for a vlm: sda_core.jobs.train_model.train_models_job with a vlm per model
    (a killed job's finished models kept as for a classifier's)."""
    from sda_core.jobs.train_model import train_models_job

    train_models_job(trainings, init_weights, train_one=train_vlm_model, **common)


def load_answerers(model: dict, weights: dict[str, str]) -> dict[str, Answerer]:
    """model name -> its LLaVA: `source` from its weights, the others its LoRA adapters merged into a copy."""
    loaded = {}
    for name, path in weights.items():
        if name == "source":
            loaded[name] = load_source(model, path)
        else:
            answerer = load_source(model, weights["source"])
            answerer.model = load_lora(answerer.model, path)
            loaded[name] = answerer
    return loaded


def predict_vlm_job(
    image_sets: dict[str, list[str]],
    output: str,
    model: dict,
    num_classes: int,
    weights: dict[str, str],
    models: dict[str, list[str]],
    device: torch.device,
    precision: str = "auto",
    threads: int = 1,
    workers: int | None = None,
    task: str = "classification",
    preprocess: dict | None = None,
    batch_size: int = 32,
    chunk: int = 64,
    normalisation: str = "sum",
) -> None:
    """The predict stage for a vlm (sda_core.jobs.predict.predict_job's record): each model's probabilities
    over the table question's candidates (the classes) under predictions_key, and on the clean set over
    each other question's under question_key (its sanity rows and gate). batch_size, chunk,
    normalisation: the config's vlm.batch_size (images per prefix forward), .chunk and .normalisation
    (sda_core.models.vlm.candidate_log_likelihoods). preprocess: the classifiers' (unused: a LLaVA has
    its own)."""
    run_task = task_named(task)
    precision = set_up_precision(precision, device)
    unknown = sorted({name for names in models.values() for name in names} - set(weights))
    if unknown:
        raise ValueError(f"no weights given for model(s) {', '.join(unknown)}")
    for set_name, stores in image_sets.items():  # the inputs' mistakes, before any model is loaded
        sequence = StoreSequence(stores)
        run_task.check_layout(sequence.label_layout, ", ".join(stores))
        problem = run_task.label_problem(sequence.labels(), num_classes)
        if problem:
            raise ValueError(f"image set {set_name} ({', '.join(stores)}): {problem}")
    answerers = load_answerers(model, weights)
    for answerer in answerers.values():
        answerer.model.to(device).eval()
    arrays: dict[str, np.ndarray] = {}
    for set_name, stores in image_sets.items():
        if not models[set_name]:
            continue  # a set no model of this kind scores (the classifiers' timestep study)
        scoring = {name: answerers[name] for name in models[set_name]}
        probabilities: dict[tuple[str, str], list[np.ndarray]] = {}
        labels, clock, start = [], WaitClock(), 0
        for images, batch_labels in clock.batches(batch_loader(stores, batch_size, threads, device, workers)):
            for name, answerer in scoring.items():
                x = answerer.preprocess(to_unit(images, device))
                for rank, (question, prompt) in enumerate(zip(answerer.questions, answerer.prompts, strict=True)):
                    if rank and set_name != CLEAN:
                        continue  # the other questions: sanity rows and the gate on the clean set
                    with autocast(device, precision):
                        p = closed_set_probabilities(answerer.model, prompt, x, chunk, normalisation).float()
                    check_finite(
                        p,
                        f"predict {set_name}, images {start}..{start + len(images)}, {name} LLaVA "
                        f"({weights[name]}), question {question.name}",
                    )
                    probabilities.setdefault((name, question.name), []).append(p.cpu().numpy())
            labels.append(batch_labels.numpy())
            start += len(images)
        clock.report(f"predict {set_name}")
        set_labels = np.concatenate(labels)
        arrays[labels_key(set_name)] = set_labels
        for name, answerer in scoring.items():
            for rank, question in enumerate(answerer.questions[: None if set_name == CLEAN else 1]):
                rows = np.concatenate(probabilities[name, question.name]).astype(np.float16)
                key = predictions_key(name, set_name) if rank == 0 else question_key(question.name, name, set_name)
                arrays[key] = rows
                answers = np.array(question.answers(set_labels))
                if rank:
                    arrays[question_labels_key(question.name, set_name)] = answers
                log.info(
                    "%s on %s, question %s: accuracy %.2f%%",
                    name,
                    set_name,
                    question.name,
                    100 * np.mean(rows.argmax(1) == answers),
                )
    tmp = Path(f"{output}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, output)
