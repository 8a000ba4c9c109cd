"""Non-finite values (NaN, Inf) stop the run where they appear, naming the stage, the data and the model.

A diverged or broken model otherwise produces black images (NaN cast to uint8 is 0) and chance-level
predictions that are stored, fine-tuned on and scored while the run exits 0.
"""

from __future__ import annotations

import numpy as np
import torch


class NonFiniteError(RuntimeError):
    pass


def count_non_finite(values: torch.Tensor | np.ndarray) -> int:
    if isinstance(values, torch.Tensor):
        return int((~torch.isfinite(values.detach())).sum()) if values.is_floating_point() else 0
    return int((~np.isfinite(values)).sum()) if np.issubdtype(values.dtype, np.floating) else 0


def check_finite(values: torch.Tensor | np.ndarray, what: str) -> None:
    """Raise NonFiniteError when `values` hold a NaN or Inf; `what` says where (stage, chunk, model)."""
    bad = count_non_finite(values)
    if bad:
        raise NonFiniteError(
            f"{what}: {bad} of {values.numel() if isinstance(values, torch.Tensor) else values.size} "
            "values are NaN or Inf; the model (or its input) is broken, nothing was written"
        )
