"""Denoiser registry: a config spec (sda_core.models.specs: a preset or {arch: adm|dit, ...}) -> module,
and its checkpoints."""

from __future__ import annotations

import os
from collections.abc import Mapping

from torch import nn

from sda_core.checkpoints import load_weights
from sda_core.downloads import HOW_TO_OBTAIN
from sda_core.models.specs import resolve_spec


def build_denoiser(spec: str | Mapping) -> nn.Module:
    kwargs = resolve_spec(spec)
    arch = kwargs.pop("arch")
    if arch == "adm":
        from sda_core.models.adm import create_adm

        return create_adm(kwargs)
    from sda_core.models.dit import DiTDenoiser

    return DiTDenoiser(**kwargs)


def load_denoiser(spec: str | Mapping, path: str | os.PathLike, how_to_obtain: str | None = None) -> nn.Module:
    """Build from the spec and load weights strictly (safetensors or weights_only torch files); a missing
    file names how to obtain it (by default the official release of the spec's arch)."""
    if how_to_obtain is None:
        how_to_obtain = f"The official weights: {HOW_TO_OBTAIN[resolve_spec(spec)['arch']]}."
    return load_weights(build_denoiser(spec), path, how_to_obtain)
