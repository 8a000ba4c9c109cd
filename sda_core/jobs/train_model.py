"""Stage: train a classifier on image stores, from scratch (digits source models) or from weights (SDA)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sda_core.checkpoints import save_weights
from sda_core.loading import StoreRows
from sda_core.model_training import TrainSettings, train_model
from sda_core.models.classifiers import Preprocess
from sda_core.precision import set_up_precision
from sda_core.store import StoreSequence, input_identities
from sda_core.tasks import task_named

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Training:
    """One model a training job makes: from `stores` (images_per_class: a class-balanced subset of them)."""

    stores: list[str]
    output: str
    images_per_class: int | None = None


def train_models_job(trainings: list[Training], init_weights: str | None = None, train_one=None, **common) -> None:
    """Several models of one architecture, one after another (target_jobs: grouped: every fine-tuned model
    of an architecture in one job, sparing a process start-up each); common: train_model_job's other
    arguments. With several, each finished model waits at `<output>.partial` beside a record of what it
    learnt from (`<output>.partial.json`), and all are renamed to their outputs once the last is done:
    Snakemake deletes every declared output of a killed job before rerunning it, and leaves these alone,
    so the rerun retrains none that finished (and any whose inputs changed since). train_one: what trains
    one model (train_model_job; a model kind's own, sda_core.models.kinds), called with the same arguments."""
    train_one = train_one or train_model_job
    if len(trainings) == 1:
        training = trainings[0]
        train_one(
            training.stores,
            training.output,
            init_weights=init_weights,
            images_per_class=training.images_per_class,
            **common,
        )
        return
    init_identity = input_identities([init_weights])
    for training in trainings:
        partial, record = Path(f"{training.output}.partial"), Path(f"{training.output}.partial.json")
        made_from = json.dumps(
            {
                **asdict(training),
                **{key: value for key, value in common.items() if key not in ("threads", "workers")},
                "init_weights": init_weights,
                "input_identities": {**input_identities(training.stores), **init_identity},
            },
            sort_keys=True,
            default=str,  # a torch.device as its name
        )
        if partial.is_file() and record.is_file() and record.read_text() == made_from:
            log.info("%s: kept from a killed run of this job (same inputs and settings)", partial)
            continue
        record.unlink(missing_ok=True)
        train_one(
            training.stores,
            str(partial),
            init_weights=init_weights,
            images_per_class=training.images_per_class,
            **common,
        )
        record.write_text(made_from)  # after the weights: a record always describes finished weights
    for training in trainings:  # every model finished first: then the renames
        os.replace(f"{training.output}.partial", training.output)
        Path(f"{training.output}.partial.json").unlink()


def train_model_job(
    stores: list[str],
    output: str,
    timm_name: str,
    timm_kwargs: dict,
    num_classes: int,
    settings: dict,
    preprocess: dict,
    seed: int,
    device: torch.device,
    init_weights: str | None = None,
    images_per_class: int | None = None,
    precision: str = "auto",
    threads: int = 1,
    workers: int | None = None,
    segmenter: dict | None = None,
    task: str = "classification",
) -> None:
    """Train all layers on the images of `stores`; SDA's fine-tuning starts from `init_weights`.
    With images_per_class, on the first that many images of each class (the set-size study). The
    model is the task's (sda_core.tasks): a classifier, or a segmenter (its `segmenter` settings) on stores
    with label maps."""
    precision = set_up_precision(precision, device)
    run_task = task_named(task)
    positions = None
    if images_per_class is not None:
        positions = run_task.balanced_subset(StoreSequence(stores).labels(), images_per_class, num_classes)
    data = StoreRows(stores, positions)  # streamed from the stores by the loader's workers
    torch.manual_seed(seed)  # before the model exists: its random initialisation is part of the result
    model = (
        run_task.create_model(timm_name, num_classes, timm_kwargs, segmenter)
        if init_weights is None
        else run_task.load_model(timm_name, num_classes, timm_kwargs, init_weights, segmenter)
    )
    log.info(
        "%s on %d images (%s), precision %s",
        timm_name,
        len(data),
        "fine-tuning" if init_weights else "from scratch",
        precision,
    )
    train_model(
        model,
        data,
        TrainSettings.from_config(settings, seed),
        Preprocess(**preprocess),
        device,
        name=f"{timm_name} ({output})",
        precision=precision,
        threads=threads,
        workers=workers,
        task=run_task,
    )
    save_weights(model, output, metadata={"timm_name": timm_name, "precision": precision})
