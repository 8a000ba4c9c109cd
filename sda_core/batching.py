"""`adaptation.batch_size: auto`: the largest adaptation batch that fits the GPU's free memory.

The batch is measured, not guessed: one guided step of the job's own model, settings and image size
runs at a small batch, its peak allocation above what was allocated before gives the memory per image,
and the batch is the free memory's `FILL` share over it, in whole chunks of the store.

With auto the stores are laid out in chunks of AUTO_CHUNK_SIZE images (the reference's batch) and the
shards cut on those chunks, so that the outputs' layout never depends on the free memory of the GPU
that ran them, and with `guidance.norm: sample` neither does their content, up to float rounding
(kernels may differ with the batch size); the batch spans several chunks. The probe runs the eager
model (a compiled one would compile its batch too) and only when chunks are pending. On the CPU
there is no such measure to take: auto is one chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_CHUNK_SIZE = 4
FILL = 0.85  # of the free memory: the allocator's fragmentation and other kernels' workspace need the rest


def auto_problem(batch_size: int | str, guidance: dict | None) -> str | None:
    """Why an auto batch cannot serve a process with this guidance (None: it can): with the batch-wide
    norm the guidance of each image depends on its batch, and so on the GPU's free memory."""
    guided = bool(guidance) and guidance.get("scale", 1) != 0
    if batch_size == AUTO and guided and guidance.get("norm", "batch") == "batch":
        return (
            "adaptation.batch_size: auto with guidance.norm: batch would make the images depend on the GPU's "
            "free memory (the norm is taken over the batch); set guidance.norm: sample or a fixed batch_size"
        )
    return None


def chunk_size(batch_size: int | str) -> int:
    """The store chunk (and shard unit) of a configured batch size."""
    return AUTO_CHUNK_SIZE if batch_size == AUTO else int(batch_size)


def batch_that_fits(free_bytes: int, bytes_per_image: float, chunk: int, most: int) -> int:
    """Whole chunks of images whose memory fits FILL of `free_bytes`, at least one chunk and at most
    `most` images rounded up to a chunk."""
    fits = int(FILL * free_bytes / max(bytes_per_image, 1.0)) // chunk * chunk
    return max(chunk, min(fits, -(-most // chunk) * chunk))


def resolve_batch_size(
    batch_size: int | str, device: torch.device, step: Callable[[int], object], most: int, what: str
) -> int:
    """The batch to run: `batch_size` itself, or for auto on CUDA the batch measured with `step(n)` (one
    guided step on n images); logs what it chose and why."""
    if batch_size != AUTO:
        return int(batch_size)
    if device.type != "cuda":
        log.info("%s: batch_size auto on %s: one chunk, %d images", what, device, AUTO_CHUNK_SIZE)
        return AUTO_CHUNK_SIZE
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(AUTO_CHUNK_SIZE)
    torch.cuda.synchronize(device)
    per_image = (torch.cuda.max_memory_allocated(device) - before) / AUTO_CHUNK_SIZE
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(device)
    batch = batch_that_fits(free, per_image, AUTO_CHUNK_SIZE, most)
    log.info(
        "%s: batch_size auto: %.2f GiB per image measured at batch %d, %.1f of %.1f GiB free: batch %d",
        what,
        per_image / 2**30,
        AUTO_CHUNK_SIZE,
        free / 2**30,
        total / 2**30,
        batch,
    )
    return batch
