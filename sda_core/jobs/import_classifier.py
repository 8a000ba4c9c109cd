"""Stage: a classifier's published weights (a source model; a released f'), converted once into results/
(timm naming, safetensors).

Later stages read this copy, so the Hugging Face cache or release file is needed by this one job only
(on a cluster, a local rule on the submit host).
"""

from __future__ import annotations

import logging

from sda_core.checkpoints import save_weights
from sda_core.models.classifiers import load_classifier

log = logging.getLogger(__name__)


def import_classifier_job(
    weights: str, output: str, timm_name: str, timm_kwargs: dict, num_classes: int, weights_format: str = "auto"
) -> None:
    """weights_format: sda_core.models.classifiers.load_classifier's (auto, timm or openmmlab)."""
    model = load_classifier(timm_name, num_classes, timm_kwargs, weights, weights_format=weights_format)
    save_weights(model, output, metadata={"timm_name": timm_name, "imported_from": str(weights)})
    log.info("%s: %s -> %s", timm_name, weights, output)
