"""MEMO: test-time adaptation by marginal entropy minimisation (Zhang, Levine and Finn, NeurIPS 2022).

Per test image, independently of every other: start from the source weights; make `views` AugMix
views of the image (sda_core.augmix); take `steps` optimiser steps on the entropy of the mean softmax
over the views; predict the un-augmented image with the adapted weights. Batch-norm layers normalise
with a "prior": the stored statistics weighted N / (N + 1) against the statistics of the batch at
hand (the views during the step, the one image's positions in the prediction); N = prior_strength,
None for the stored statistics alone. Models without batch norm (Swin, ConvNeXt) are unaffected by it.

Like tent, the method is a small wrapper with explicit steps: `configure_model` (eval mode, the prior
installed), `check_model`, then `MemoAdapter.probabilities` per batch of images, which never changes the
model it was given (each image's weights are copies, in a functional call).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sda_core.augmix import augmix_views
from sda_core.models.classifiers import Preprocess


@dataclass(frozen=True)
class MemoSettings:
    """The reference settings (docs/baselines.md#memo): 64 views, one SGD step, lr 2.5e-4 without weight
    decay or momentum (ResNet-50), prior strength 16."""

    views: int = 64
    steps: int = 1
    prior_strength: float | None = 16.0
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 2.5e-4
    weight_decay: float = 0.0
    momentum: float = 0.0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"MEMO optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.views < 1 or self.steps < 0:
            raise ValueError(f"MEMO needs at least one view and no negative step count, got {self}")

    @property
    def prior(self) -> float:
        """The weight of the stored statistics, N / (N + 1); 1 (stored only) without a prior."""
        return 1.0 if self.prior_strength is None else self.prior_strength / (self.prior_strength + 1)


def _prior_batch_norm(self: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """Batch norm with the stored statistics mixed with the batch's: prior * stored + (1 - prior) * batch.
    The batch statistics are constants for the gradient (the reference computes them through an
    in-place running-statistics update), and its variance is the unbiased one."""
    prior = self.memo_prior
    if prior < 1.0:
        with torch.no_grad():
            batch_mean = x.mean(dim=(0, 2, 3))
            batch_var = x.var(dim=(0, 2, 3), unbiased=True) if x.numel() > x.shape[1] else torch.zeros_like(batch_mean)
        mean = prior * self.running_mean + (1 - prior) * batch_mean
        var = prior * self.running_var + (1 - prior) * batch_var
    else:
        mean, var = self.running_mean, self.running_var
    return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


def configure_model(model: nn.Module, prior: float) -> nn.Module:
    """Eval mode (dropout and drop-path off, as the reference), and every BatchNorm2d normalising with the
    prior. Another batch-norm flavour (e.g. timm's BatchNormAct2d) is refused rather than left unmixed."""
    model.eval()
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if type(module) is not nn.BatchNorm2d:
                raise NotImplementedError(
                    f"MEMO's batch-norm prior supports nn.BatchNorm2d, not {type(module).__name__} ({name})"
                )
            if not module.track_running_stats:
                raise ValueError(f"batch norm {name} keeps no stored statistics for the prior")
            module.memo_prior = prior
            module.forward = types.MethodType(_prior_batch_norm, module)
    return model


def check_model(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError("MEMO's model must be configured with configure_model() (eval mode)")
    unmixed = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.BatchNorm2d) and not hasattr(module, "memo_prior")
    ]
    if unmixed:
        raise RuntimeError(f"batch norm layers without the MEMO prior: {', '.join(unmixed[:5])}")


def mean_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log p_bar = logsumexp_v log_softmax(logits_v) - log V: the views' (rows') mean probability, taken
    in log space as MEMO's and GDA's code do, clamped so that a class with p = 0 gives 0 * finite."""
    log_mean = torch.logsumexp(logits.log_softmax(dim=1), dim=0) - math.log(logits.shape[0])
    return log_mean.clamp(min=torch.finfo(log_mean.dtype).min)


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(mean_v softmax(logits_v)), the mean over the views (rows) taken by mean_log_probs."""
    log_mean = mean_log_probs(logits)
    return -(log_mean.exp() * log_mean).sum()


class MemoAdapter:
    """MEMO around one source classifier (configured with configure_model)."""

    def __init__(self, model: nn.Module, settings: MemoSettings, preprocess: Preprocess):
        check_model(model)
        self.model = model
        self.settings = settings
        self.preprocess = preprocess
        self.parameters = {name: p.detach() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach() for name, b in model.named_buffers()}

    def _optimizer(self, parameters: list[torch.Tensor]) -> torch.optim.Optimizer:
        s = self.settings
        if s.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        return torch.optim.AdamW(parameters, lr=s.lr, weight_decay=s.weight_decay)

    def adapted_parameters(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights after one step on each of `views` (per step: V, C, crop, crop in [0, 1]; fresh views
        every step, as the reference draws them): fresh copies of the source weights and a fresh
        optimiser, so no image sees another's state."""
        parameters = {name: p.clone().requires_grad_(True) for name, p in self.parameters.items()}
        optimizer = self._optimizer(list(parameters.values()))
        for step_views in views:
            with torch.enable_grad():
                logits = functional_call(
                    self.model, {**parameters, **self.buffers}, (self.preprocess.normalise(step_views),)
                )
                loss = marginal_entropy(logits.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return {name: p.detach() for name, p in parameters.items()}

    def probabilities(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """MEMO's softmax rows (B, classes) for images (B, C, H, W) in [0, 1], image k's views drawn from
        generators[k] (each step's after the previous step's)."""
        v = self.settings.views
        views = [augmix_views(images, v, self.preprocess.crop, generators) for _ in range(self.settings.steps)]
        rows = []
        for k in range(len(images)):
            parameters = self.adapted_parameters([step[k * v : (k + 1) * v] for step in views])
            with torch.no_grad():
                logits = functional_call(
                    self.model, {**parameters, **self.buffers}, (self.preprocess(images[k : k + 1]),)
                )
            rows.append(logits.float().softmax(dim=1))
        return torch.cat(rows)


def per_image_predictor(
    weights: dict[str, str], model: dict, num_classes: int, preprocess: dict, device: torch.device, **settings
):
    """MEMO as a per-image stage (sda_core.jobs.per_image): the source classifier (weights["classifier"])
    adapted to each image on its own; settings: MemoSettings' fields."""
    from sda_core.methods import PerImagePredictor
    from sda_core.models.classifiers import load_classifier
    from sda_core.pixels import to_unit

    memo = MemoSettings(**settings)
    timm_name, timm_kwargs = model["timm_name"], model["timm_kwargs"]
    classifier = load_classifier(timm_name, num_classes, timm_kwargs, weights["classifier"]).to(device)
    adapter = MemoAdapter(configure_model(classifier, memo.prior), memo, Preprocess(**preprocess))
    return PerImagePredictor(
        probabilities=lambda images, generators, where: adapter.probabilities(to_unit(images, device), generators),
        fingerprint={
            "model": [timm_name, timm_kwargs],
            "weights": weights["classifier"],
            "settings": memo,
            "preprocess": preprocess,
        },
        description=f"{timm_name}, {memo}",
        checked=weights["classifier"],
    )
