"""Stage: train a classifier on image stores, from scratch (digits source models) or from weights (SDA)."""

from __future__ import annotations

import logging
import random

import torch

from sda_core.checkpoints import save_weights
from sda_core.classifier_training import TrainSettings, train_classifier
from sda_core.models.classifiers import Preprocess, create_classifier, load_classifier
from sda_core.store import StoreSequence

log = logging.getLogger(__name__)


def train_classifier_job(
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
) -> None:
    """Train all layers on the images of `stores`; SDA's fine-tuning starts from `init_weights`."""
    data = StoreSequence(stores)
    images, labels = data.read(0, len(data))
    random.seed(seed)  # timm's RandAugment draws from Python's generator
    torch.manual_seed(seed)  # before the model exists: its random initialisation is part of the result
    model = (
        create_classifier(timm_name, num_classes, timm_kwargs)
        if init_weights is None
        else load_classifier(timm_name, num_classes, timm_kwargs, init_weights)
    )
    log.info("%s on %d images (%s)", timm_name, len(images), "fine-tuning" if init_weights else "from scratch")
    train_classifier(
        model,
        images,
        labels,
        TrainSettings.from_config(settings, seed),
        Preprocess(**preprocess),
        device,
        name=f"{timm_name} ({output})",
    )
    save_weights(model, output, metadata={"timm_name": timm_name})
