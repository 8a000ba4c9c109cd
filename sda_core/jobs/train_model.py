"""Stage: train a classifier on image stores, from scratch (digits source models) or from weights (SDA)."""

from __future__ import annotations

import logging

import torch

from sda_core.checkpoints import save_weights
from sda_core.loading import StoreRows
from sda_core.model_training import TrainSettings, train_model
from sda_core.models.classifiers import Preprocess
from sda_core.precision import set_up_precision
from sda_core.store import StoreSequence
from sda_core.tasks import task_named

log = logging.getLogger(__name__)


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
