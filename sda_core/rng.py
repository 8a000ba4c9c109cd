"""Per-sample random streams: every random draw for sample `index` comes from its own generator.

A sample's noise therefore depends only on (seed, stream, index), never on the batch it lands in
or on how many shards the work was split into. Draws happen on the CPU, so a GPU run uses the
same noise as a CPU run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def sample_seed(seed: int, stream: str, index: int) -> int:
    """A 63-bit seed from (global seed, stream name, sample index), stable across Python runs."""
    digest = hashlib.sha256(f"{seed}/{stream}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_generators(seed: int, stream: str, indices: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(sample_seed(seed, stream, int(i))) for i in indices]


def randn_per_sample(
    generators: Sequence[torch.Generator], shape: Sequence[int], device=None, dtype=torch.float32
) -> torch.Tensor:
    """A batch of standard normal draws, row k from generators[k]."""
    rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)
