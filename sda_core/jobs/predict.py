"""Stage: softmax outputs of one architecture's source (f), fine-tuned (f') and study models on a group of
image sets.

Stored once, so every ensemble and sanity figure is computed without rerunning a classifier. A group
is one corruption's target and adapted sets (sda_core.image_sets), so the scoring loads one corruption at
a time and the groups run as parallel jobs. Keys: sda_core.image_sets.predictions_key and labels_key.
Probabilities are stored as float16 to keep the file small.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from sda_core.finite import check_finite
from sda_core.image_sets import labels_key, predictions_key
from sda_core.loading import WaitClock, batch_loader
from sda_core.models.classifiers import Preprocess
from sda_core.pixels import to_unit
from sda_core.precision import autocast, set_up_precision
from sda_core.store import StoreSequence
from sda_core.tasks import task_named

log = logging.getLogger(__name__)


def predict_job(
    image_sets: dict[str, list[str]],
    output: str,
    timm_name: str,
    timm_kwargs: dict,
    num_classes: int,
    weights: dict[str, str],
    models: dict[str, list[str]],
    preprocess: dict,
    device: torch.device,
    batch_size: int = 256,
    precision: str = "auto",
    threads: int = 1,
    workers: int | None = None,
    segmenter: dict | None = None,
    task: str = "classification",
) -> None:
    """weights maps a model name (sda_core.image_sets: source, finetuned, ...) to its checkpoint;
    image_sets a set name to its stores; models a set name to the models that score it.
    precision (sda_core.precision): the classifiers' autocast; softmax is taken in float32. The stores are
    decoded ahead by DataLoader workers (sda_core.loading; workers None: from threads and device).
    The models are the task's (sda_core.tasks): for segmentation segmenters (their `segmenter` settings),
    whose probabilities are per pixel, (classes, H, W) per image."""
    run_task = task_named(task)
    precision = set_up_precision(precision, device)
    preprocess = Preprocess(**preprocess)
    unknown = sorted({model for names in models.values() for model in names} - set(weights))
    if unknown:
        raise ValueError(f"no weights given for model(s) {', '.join(unknown)}")
    for set_name, stores in image_sets.items():  # the inputs' mistakes, before any model is loaded
        sequence = StoreSequence(stores)
        run_task.check_layout(sequence.label_layout, ", ".join(stores))
        run_task.check_inputs(preprocess, sequence.label_layout)
        problem = run_task.label_problem(sequence.labels(), num_classes)
        if problem:
            raise ValueError(f"image set {set_name} ({', '.join(stores)}): {problem}")
    loaded = {
        name: run_task.load_model(timm_name, num_classes, timm_kwargs, path, segmenter).to(device).eval()
        for name, path in weights.items()
    }
    arrays: dict[str, np.ndarray] = {}
    for set_name, stores in image_sets.items():
        scoring = {name: loaded[name] for name in models[set_name]}
        probs: dict[str, list[np.ndarray]] = {name: [] for name in scoring}
        labels = []
        clock, start = WaitClock(), 0
        for images, batch_labels in clock.batches(batch_loader(stores, batch_size, threads, device, workers)):
            x = preprocess(to_unit(images, device))
            with torch.no_grad(), autocast(device, precision):
                for name, model in scoring.items():
                    logits = model(x).float()
                    check_finite(
                        logits,
                        f"predict {set_name}, images {start}..{start + len(images)}, "
                        f"{name} {timm_name} ({weights[name]})",
                    )
                    probs[name].append(torch.softmax(logits, dim=1).cpu().numpy())
            labels.append(batch_labels.numpy())
            start += len(images)
        clock.report(f"predict {set_name}")
        arrays[labels_key(set_name)] = np.concatenate(labels)
        for name in scoring:
            arrays[predictions_key(name, set_name)] = np.concatenate(probs[name]).astype(np.float16)
            summary = run_task.score_summary(
                arrays[predictions_key(name, set_name)], arrays[labels_key(set_name)], num_classes
            )
            log.info("%s on %s: %s", name, set_name, summary)
    tmp = Path(f"{output}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, output)
