"""Denoiser registry: a config spec {arch: adm|dit, ...constructor args} -> module, and its checkpoints."""
from __future__ import annotations

import os

from torch import nn

from sda_core.checkpoints import load_weights

DENOISER_ARCHS = ("adm", "dit")


def build_denoiser(spec: dict) -> nn.Module:
    kwargs = dict(spec)
    arch = kwargs.pop("arch")
    if arch == "adm":
        from sda_core.models.adm import create_adm

        return create_adm(kwargs)
    if arch == "dit":
        from sda_core.models.dit import DiTDenoiser

        return DiTDenoiser(**kwargs)
    raise ValueError(f"unknown denoiser arch {arch!r}; valid: {', '.join(DENOISER_ARCHS)}")


def load_denoiser(spec: dict, path: str | os.PathLike, how_to_obtain: str = "") -> nn.Module:
    """Build from the spec and load weights strictly (safetensors or weights_only torch files)."""
    return load_weights(build_denoiser(spec), path, how_to_obtain)
