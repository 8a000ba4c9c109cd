"""Supervised training of a classifier on an image store: source training and SDA's fine-tuning.

One loop serves both; the recipe (docs/method.md#reference-settings) is data: SGD with step decay for ResNets, AdamW
with linear warm-up then cosine decay for Swin/ConvNeXt (no weight decay on norms, biases and
position tables), label smoothing, gradient clipping, and an early stop epoch (SDA evaluates epoch 15
of a 30-epoch schedule).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sda_core.finite import NonFiniteError
from sda_core.loading import ArrayRows, StoreRows, TrainingImages, WaitClock, training_loader
from sda_core.models.classifiers import Preprocess
from sda_core.pixels import to_unit
from sda_core.precision import autocast
from sda_core.tasks import Task, task_named

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    epochs: int = 30  # length of the lr schedule
    stop_epoch: int | None = None  # train only this many epochs of it (None: all)
    batch_size: int = 512
    micro_batch_size: int | None = None  # accumulate gradients over slices of the batch (None: one pass)
    schedule: str = "multistep"  # multistep | warmup_cosine | constant
    milestones: tuple[int, ...] = (10, 20, 25)
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    no_decay_on_norm_bias: bool = False
    augment: str = "none"  # none | imagenet (RandomResizedCrop, flip, RandAugment, RandomErasing)
    seed: int = 0

    @classmethod
    def from_config(cls, config: dict, seed: int) -> TrainSettings:
        values = dict(config)
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values, seed=seed)


def learning_rate(settings: TrainSettings, progress_epochs: float) -> float:
    """The lr at a fractional epoch: step decay, or linear warm-up then cosine to min_lr."""
    if settings.schedule == "constant":
        return settings.lr
    if settings.schedule == "multistep":
        passed = sum(progress_epochs >= m for m in settings.milestones)
        return settings.lr * settings.gamma**passed
    if settings.schedule == "warmup_cosine":
        if progress_epochs < settings.warmup_epochs:
            fraction = progress_epochs / settings.warmup_epochs
            return settings.warmup_lr + (settings.lr - settings.warmup_lr) * fraction
        span = max(settings.epochs - settings.warmup_epochs, 1e-12)
        fraction = min((progress_epochs - settings.warmup_epochs) / span, 1.0)
        return settings.min_lr + (settings.lr - settings.min_lr) * 0.5 * (1 + math.cos(math.pi * fraction))
    raise ValueError(f"unknown schedule {settings.schedule!r}; valid: constant, multistep, warmup_cosine")


def _parameter_groups(model: nn.Module, settings: TrainSettings) -> list[dict]:
    if not settings.no_decay_on_norm_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = (
            param.ndim <= 1
            or name.endswith(".bias")
            or "relative_position_bias_table" in name
            or "pos_embed" in name
            or "absolute_pos" in name
        )
        (no_decay if skip else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, settings)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    raise ValueError(f"unknown optimizer {settings.optimizer!r}; valid: sgd, adamw")


class ImagenetAugment:
    """timm's ImageNet training transform of one uint8 HWC image (RandomResizedCrop, flip, RandAugment m9
    n2, RandomErasing 0.25) to a normalised tensor; its random draws come from the global generators,
    which sda_core.loading seeds per image."""

    def __init__(self, preprocess: Preprocess):
        from timm.data import create_transform

        self.transform = create_transform(
            preprocess.crop,
            is_training=True,
            auto_augment="rand-m9-n2-mstd0.5-inc1",
            re_prob=0.25,
            interpolation="bicubic",
            mean=preprocess.mean,
            std=preprocess.std,
        )

        for step in self.transform.transforms:
            for op in getattr(step, "ops", ()):  # timm's RandAugment
                if op.name.startswith("Posterize"):
                    op.aug_fn = posterize_keeping_any_bits

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        from PIL import Image

        return self.transform(Image.fromarray(image))


def posterize_keeping_any_bits(image, bits_to_keep: int, **_):
    """timm's posterize op, with 0 bits kept giving a black image as Pillow used to. At magnitude 10 (m9 with
    mstd 0.5 reaches it) timm asks to keep 0 bits, which Pillow 13 refuses with a ValueError: without
    this, an ImageNet fine-tuning stopped within its first epoch."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return image
    if bits_to_keep <= 0:
        return image.point(lambda _: 0)
    return ImageOps.posterize(image, bits_to_keep)


def make_augment(augment: str, preprocess: Preprocess) -> ImagenetAugment | None:
    """The per-image training augmentation: none (the batch is preprocessed on the device) or imagenet."""
    if augment == "none":
        return None
    if augment == "imagenet":
        return ImagenetAugment(preprocess)
    raise ValueError(f"unknown augment {augment!r}; valid: none, imagenet")


def train_model(
    model: nn.Module,
    data: StoreRows | ArrayRows,
    settings: TrainSettings,
    preprocess: Preprocess,
    device: torch.device,
    name: str = "classifier",
    precision: str = "fp32",
    threads: int = 1,
    workers: int | None = None,
    task: Task | None = None,
    objective=None,
) -> nn.Module:
    """Train the model's parameters that require a gradient (all of a classifier's) with cross-entropy on
    the rows of `data`; returns the model in eval mode. A
    non-finite loss stops the training (NonFiniteError naming `name`, the epoch and the step).

    The labels and the loss are the task's (sda_core.tasks, classification by default): classes, or label
    maps for a segmenter (logits (N, classes, H, W) at the maps' size, the loss the mean over the labelled
    pixels, IGNORE_INDEX pixels counting nowhere, as for torchvision's segmentation references).

    With micro_batch_size the gradient of each batch is accumulated over slices: the same update for
    models without batch norm trained on classes (each slice's mean weighted by its images; for label
    maps a slice's mean is over its labelled pixels, weighted the same), and batch-norm statistics per
    slice, as on several GPUs.
    The slices are read and augmented by DataLoader workers (sda_core.loading; workers None: from
    `threads` and the device), one slice per loader item, so that the batches in flight stay small;
    augmentation is seeded per image and epoch, so the result does not depend on the worker count.

    precision: a resolved one (sda_core.precision), the forward pass's autocast; the weights, the
    optimiser state and the loss stay float32. fp16 scales the loss against gradient underflow
    (torch.amp.GradScaler; the steps it skips on overflow are logged); bf16 needs no scaling.

    objective(model, x, y) -> (loss, correct, labelled): a model kind's own loss of a slice (a vlm's
    cross-entropy on its answer tokens, sda_core.jobs.vlm), run under the autocast; None: the task's loss
    of the model's logits.
    """
    task = task or task_named("classification")
    model.to(device).train()
    optimizer = make_optimizer(model, settings)
    epochs = settings.stop_epoch or settings.epochs
    steps_per_epoch = math.ceil(len(data) / settings.batch_size)
    micro = settings.micro_batch_size or settings.batch_size
    rng = np.random.default_rng(settings.seed)
    steps, slices = [], []  # steps: (epoch, step, batch size, slices in it); slices: the loader's items
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        for step in range(steps_per_epoch):
            index = np.sort(order[step * settings.batch_size : (step + 1) * settings.batch_size])
            parts = [index[start : start + micro] for start in range(0, len(index), micro)]
            steps.append((epoch, step, len(index), len(parts)))
            slices += [[(epoch, int(i)) for i in part] for part in parts]
    task.check_layout(data.label_layout, name)
    task.check_training(preprocess, data.label_layout, [len(part) for part in slices], settings.augment)
    augment = make_augment(settings.augment, preprocess)
    loader = training_loader(TrainingImages(data, augment, settings.seed), slices, threads, device, workers)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    clock = WaitClock()
    items = clock.batches(loader)
    progress = tqdm(total=len(steps), desc="train", mininterval=5)
    total_loss, correct, labelled = 0.0, 0, 0
    for epoch, step, batch_size, num_parts in steps:
        lr = learning_rate(settings, epoch + step / steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        for _ in range(num_parts):  # the mean loss of the batch, one slice at a time
            inputs, labels = next(items)
            x = preprocess(to_unit(inputs, device)) if augment is None else inputs.to(device, non_blocking=True)
            y = labels.to(device, non_blocking=True).long()
            if objective is None:
                with autocast(device, precision):
                    logits = model(x).float()
                loss = task.loss(logits, y, settings.label_smoothing)
                valid = task.labelled(y)
                slice_correct, slice_labelled = ((logits.argmax(1) == y) & valid).sum().item(), valid.sum().item()
            else:
                with autocast(device, precision):
                    loss, slice_correct, slice_labelled = objective(model, x, y)
                loss = loss.float()
            loss = loss * (len(y) / batch_size)
            if not torch.isfinite(loss):
                raise NonFiniteError(
                    f"training {name}: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                    f"(lr {lr:.3g}); the model diverged or its input is broken, nothing was saved"
                )
            scaler.scale(loss).backward()
            total_loss += loss.item() * batch_size
            correct += slice_correct
            labelled += slice_labelled
        if settings.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        scale = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(optimizer)  # without fp16: optimizer.step()
        scaler.update()
        if scale is not None and scaler.get_scale() < scale:
            log.warning(
                "fp16: step %d of epoch %d skipped on overflow, loss scale now %g",
                step + 1,
                epoch + 1,
                scaler.get_scale(),
            )
        progress.update()
        if step == steps_per_epoch - 1:
            log.info(
                "epoch %d/%d: loss %.4f, train accuracy %.2f%% (of images, or of labelled pixels), lr %.3g",
                epoch + 1,
                epochs,
                total_loss / len(data),
                100 * correct / max(labelled, 1),
                lr,
            )
            total_loss, correct, labelled = 0.0, 0, 0
    progress.close()
    clock.report(f"training {name}")
    return model.eval()
