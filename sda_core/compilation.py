"""`compile:` in the config: torch.compile of the denoisers, the passes that dominate the cost.

- none (the default): eager PyTorch.
- inductor: torch.compile with static shapes. The guided and the unguided step, and a shard's last
  smaller batch, each compile once per job (the 256 px UNet's guided step: about 6 minutes on 2 CPU
  cores), amortised over a shard's steps; outputs equal eager within float rounding
  (tests/test_compilation.py).
- cudagraphs: the same, with CUDA graphs replaying each step's kernels (torch.compile's
  "reduce-overhead"); CUDA only, where launch overhead matters at small batches.

Compiled or not is recorded in the stores' fingerprints: a store is not resumed across a change.
"""

from __future__ import annotations

import torch
from torch import nn

COMPILE_MODES = ("none", "inductor", "cudagraphs")
_CUDAGRAPHS = "_sda_cudagraphs"  # set on a denoiser compiled with CUDA graphs


def device_problem(mode: str, device_type: str) -> str | None:
    """Why compile mode `mode` cannot run on a device of this type (None: it can)."""
    if mode == "cudagraphs" and device_type != "cuda":
        return f"compile: cudagraphs needs a CUDA device, and this runs on {device_type}; use inductor or none"
    return None


def compile_denoiser(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """`model` (configured with configure_denoiser) compiled for `device` as `mode` says."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "none":
        return model
    problem = device_problem(mode, device.type)
    if problem:
        raise ValueError(problem)
    compiled = torch.compile(model, dynamic=False, mode="reduce-overhead" if mode == "cudagraphs" else "default")
    setattr(compiled, _CUDAGRAPHS, mode == "cudagraphs")
    return compiled


def begin_step(model: nn.Module) -> None:
    """Before each reverse step: a CUDA-graphs denoiser may overwrite its last outputs from here on.
    Only for such a model: the first call imports inductor, about 8 s of every job's start-up."""
    if getattr(model, _CUDAGRAPHS, False):
        torch.compiler.cudagraph_mark_step_begin()
