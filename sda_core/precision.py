"""Numerical precision of the model passes: what `precision:` in the config means on each device.

- auto (the default): bf16 autocast on CUDA, with TF32 matmuls and convolutions for what autocast
  keeps in float32; plain float32 on the CPU (bf16 kernels are slower than fp32 there without AMX,
  and the CPU runs are the ones whose outputs are bitwise reproducible).
- bf16 / fp16: autocast to that type, with TF32 on CUDA as under auto. fp16 is the reference code's choice on a GPU
  (its UNet converted to half); bf16 has float32's exponent range, so neither activations nor the
  guidance's input gradient can overflow or underflow, needs no loss scaling, and runs at the same
  tensor-core rate on Ampere and later. Its 8-bit mantissa (fp16: 11) is rounding noise next to the
  sampling noise of the reverse process (docs/method.md#precision says how it was measured).
- fp32: strict float32, TF32 off: the bitwise-comparable setting.

A job refuses bf16 and fp16 on the CPU: there they are slower than fp32 on CPUs without AMX, and with
torch 2.14.1 oneDNN's primitive cache made bf16 training return NaN after an earlier bf16 pass in the
same process (tests/test_precision.py keeps oneDNN out of its half-precision training for this reason).

Weights stay float32 in every case; GroupNorm runs in float32 inside autocast (sda_core.models.adm).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision `precision` stands for on `device`: fp32, bf16 or fp16 (never auto)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def device_problem(precision: str, device_type: str) -> str | None:
    """Why `precision` cannot run on a device of this type (None: it can)."""
    if device_type == "cpu" and precision in ("bf16", "fp16"):
        return (
            f"precision: {precision} on the CPU is refused (slower than fp32 without AMX, and oneDNN's "
            "half-precision kernels returned NaN in training with torch 2.14.1); use auto or fp32"
        )
    return None


def set_up_precision(precision: str, device: torch.device) -> str:
    """Resolve `precision` for this job's device and set the process-wide float32 matmul mode: TF32 on
    CUDA with bf16 or fp16 (for what autocast leaves in float32), strict float32 with fp32. Returns the
    resolved precision, which is what a job records in its outputs' fingerprints (and which therefore
    also says whether TF32 was on)."""
    resolved = resolve_precision(precision, device)
    problem = device_problem(resolved, device.type)
    if problem:
        raise ValueError(problem)
    if device.type == "cuda":
        tf32 = resolved != "fp32"  # so that a recorded "bf16" or "fp16" always means TF32 as well
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return resolved


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to a resolved precision on `device` (fp32: no autocast)."""
    if precision == "fp32":
        return nullcontext()
    if precision not in _AUTOCAST_TYPES:
        raise ValueError(f"precision must be resolved to fp32, bf16 or fp16 first, got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_TYPES[precision])
