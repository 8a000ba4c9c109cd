"""TENT: test-time entropy minimisation (Wang, Shelhamer, Liu, Olshausen and Darrell, ICLR 2021).

Over a stream of test batches of one target set, in a seeded order: each batch is classified, the mean
entropy of its softmax is minimised by one SGD step (momentum 0.9, lr 0.00025 at batch 64: the
paper's ImageNet-C setting) over the normalisation layers' affine parameters only, and the model and
optimiser carry on to the next batch; they are reset to the source weights at the start of every
target set (each corruption is its own stream). A batch's prediction is the output of the forward
pass its own step starts from, as the reference code returns it. The result depends on the batch size
and the stream order, so both are settings, seeded and recorded in every prediction store.

Which parameters adapt:
- a model with batch norm (ResNet): the batch-norm affine parameters, and every batch-norm layer
  normalises with the statistics of the test batch at hand (not the stored ones), as the paper's TENT;
- a model without (Swin, ConvNeXt): the layer-norm affine parameters, as the public test-time-adaptation
  harnesses do for such models (docs/baselines.md#tent).

Like the reference, a small wrapper with explicit steps: `configure_model`, `check_model`, then
`TentAdapter.probabilities` per batch and `TentAdapter.reset` per stream.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from sda_core.models.classifiers import Preprocess

BATCH_NORM = "batch-norm affine, test-batch statistics"
LAYER_NORM = "layer-norm affine"


@dataclass(frozen=True)
class TentSettings:
    """The reference settings for ImageNet-C: SGD, lr 0.00025 at batch 64, momentum 0.9, one step per batch."""

    lr: float = 2.5e-4
    momentum: float = 0.9
    steps: int = 1

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0:
            raise ValueError(f"TENT needs a positive lr and at least one step per batch, got {self}")


def configure_model(model: nn.Module) -> tuple[nn.Module, str]:
    """The model ready for TENT, and what it adapts (BATCH_NORM or LAYER_NORM): evaluation mode except the
    batch norms, which use the test batch's statistics; gradients on the chosen affine parameters only."""
    model.eval().requires_grad_(False)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batch_norms:
        for layer in batch_norms:
            # batch statistics always: no stored statistics to fall back on (the reference's configure_model)
            layer.train()
            layer.track_running_stats = False
            layer.running_mean = layer.running_var = None
            layer.requires_grad_(True)
        return model, BATCH_NORM
    for layer in model.modules():
        if isinstance(layer, (nn.LayerNorm, nn.GroupNorm)) and layer.weight is not None:
            layer.requires_grad_(True)
    return model, LAYER_NORM


def check_model(model: nn.Module) -> list[nn.Parameter]:
    """The parameters TENT adapts; an error naming the model when there are none (no affine norm layer)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError(f"TENT adapts normalisation layers' affine parameters; {type(model).__name__} has none")
    return parameters


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The batch's mean Shannon entropy of softmax(logits) (nats), TENT's loss."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()


class TentAdapter:
    """TENT around one configured classifier, over one stream at a time (reset between streams)."""

    def __init__(self, model: nn.Module, settings: TentSettings, preprocess: Preprocess):
        self.model = model
        self.settings = settings
        self.preprocess = preprocess
        self.optimizer = torch.optim.SGD(check_model(model), lr=settings.lr, momentum=settings.momentum)
        self.source_state = copy.deepcopy(model.state_dict())
        self.source_optimizer = copy.deepcopy(self.optimizer.state_dict())

    def reset(self) -> None:
        """Back to the source weights and a fresh optimiser: the start of a stream."""
        self.model.load_state_dict(self.source_state)
        self.optimizer.load_state_dict(self.source_optimizer)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The softmax rows of a batch (B, C, H, W) in [0, 1], taking the batch's step(s) on the way."""
        x = self.preprocess(images)
        for _ in range(self.settings.steps):
            with torch.enable_grad():
                logits = self.model(x)
                loss = mean_entropy(logits.float())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return logits.detach().float().softmax(1)


def per_image_predictor(
    weights: dict[str, str], model: dict, num_classes: int, preprocess: dict, device: torch.device, **settings
):
    """TENT as a stream stage (sda_core.jobs.per_image, PerImageStage.stream): the source classifier
    (weights["classifier"]) adapted over each target set's batches in turn; settings: TentSettings' fields."""
    from sda_core.methods import PerImagePredictor
    from sda_core.models.classifiers import load_classifier
    from sda_core.pixels import to_unit

    tent = TentSettings(**settings)
    timm_name, timm_kwargs = model["timm_name"], model["timm_kwargs"]
    classifier = load_classifier(timm_name, num_classes, timm_kwargs, weights["classifier"]).to(device)
    configured, adapts = configure_model(classifier)
    adapter = TentAdapter(configured, tent, Preprocess(**preprocess))
    return PerImagePredictor(
        probabilities=lambda images, generators, where: adapter.probabilities(to_unit(images, device)),
        fingerprint={
            "model": [timm_name, timm_kwargs],
            "weights": weights["classifier"],
            "settings": tent,
            "adapts": adapts,
            "preprocess": preprocess,
        },
        description=f"{timm_name}, {tent}, adapting the {adapts}",
        checked=weights["classifier"],
        reset=adapter.reset,
    )
