"""Classifier outputs on image stores: softmax probabilities per image, computed once and stored."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sda_core.images import to_unit
from sda_core.models.classifiers import Preprocess


@torch.no_grad()
def predict_probs(model: nn.Module, preprocess: Preprocess, images: np.ndarray, device: torch.device,
                  batch_size: int = 256) -> np.ndarray:
    """Softmax outputs (N, classes) float32 of an eval-mode classifier on uint8 NHWC images."""
    model.eval()
    outputs = [torch.softmax(model(preprocess(to_unit(images[k:k + batch_size], device))).float(), dim=1).cpu()
               for k in range(0, len(images), batch_size)]
    return torch.cat(outputs).numpy()
