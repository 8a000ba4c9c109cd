"""Stage: diffusion-driven adaptation of one shard of one or several image sets (DDA, MoD, DiffPure,
unguided), each under its own reverse process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from sda_core.batching import auto_problem, chunk_size, resolve_batch_size
from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import configure_denoiser, renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.respacing import noise_level
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.finite import check_finite
from sda_core.models.denoisers import load_denoiser
from sda_core.pixels import from_model_range, resize, to_model_range
from sda_core.precision import set_up_precision
from sda_core.processes import ReverseProcess
from sda_core.rng import sample_generators
from sda_core.store import StoreSequence, fill_store, finalize_all, input_identities, shard_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptedSet:
    """One image set of an adaptation job: its input stores, its output store, the reverse process that
    adapts it (sda_core.processes) and its noise stream."""

    inputs: list[str]
    output: str
    process: ReverseProcess
    stream: str


def adapt_job(
    inputs: list[str],
    output: str,
    spec: dict,
    checkpoint: str,
    process: ReverseProcess,
    batch_size: int | str,
    shard: int,
    num_shards: int,
    stream: str,
    seed: int,
    device: torch.device,
    precision: str = "auto",
    compile_mode: str = "none",
    codec: str = "zstd",
) -> None:
    """adapt_sets_job of one set: `inputs` under `process` into `output`."""
    adapt_sets_job(
        [AdaptedSet(inputs, output, process, stream)],
        spec,
        checkpoint,
        batch_size,
        shard,
        num_shards,
        seed,
        device,
        precision,
        compile_mode,
        codec,
    )


def adapt_sets_job(
    sets: list[AdaptedSet],
    spec: dict,
    checkpoint: str,
    batch_size: int | str,
    shard: int,
    num_shards: int,
    seed: int,
    device: torch.device,
    precision: str = "auto",
    compile_mode: str = "none",
    codec: str = "zstd",
) -> None:
    """Re-noise and denoise shard `shard` of each set's concatenated inputs, written at the model's size.

    Each set's process gives the respacing, the start index, the noise index and the guidance. Noise is
    seeded per (seed, stream, index). batch_size "auto" (sda_core.batching) lays the store out in fixed
    chunks and runs the batch that fits the GPU's free memory. The denoiser is loaded once for all the
    sets; with several (target_jobs: grouped), their stores are renamed to their outputs only once all
    are complete, so a killed job loses none of them.
    """
    precision = set_up_precision(precision, device)  # resolved: what the fingerprint records
    sources = [StoreSequence(adapted_set.inputs) for adapted_set in sets]
    for adapted_set, source in zip(sets, sources):  # every set's mistake before the denoiser loads
        problem = adapt_problem(adapted_set, source, spec, batch_size)
        if problem:
            raise ValueError(problem)
    eager = configure_denoiser(load_denoiser(spec, checkpoint).to(device))
    model = compile_denoiser(eager, compile_mode, device)
    chunk, size = chunk_size(batch_size), spec["image_size"]
    checkpoint_identity = input_identities([checkpoint])  # read once for all the sets

    def adapt_set(adapted_set: AdaptedSet, source: StoreSequence):
        """One set's shard, into `<output>.partial` (returned, complete; renamed below with the others)."""
        inputs, output, stream = adapted_set.inputs, adapted_set.output, adapted_set.stream
        process = adapted_set.process
        start, stop = shard_range(len(source), num_shards, shard, chunk)
        respacing, steps, noise_index = process.respacing, process.steps, process.noise_index
        guidance = process.guidance
        schedule = DiffusionSchedule(respacing=respacing)
        low_pass = LowPassGuidance(**guidance) if guidance else None
        log.info(
            "%s: images %d..%d of %d, respacing %d, %d steps from t=%d, guidance %s",
            stream,
            start,
            stop,
            len(source),
            respacing,
            steps,
            schedule.timesteps[noise_level(steps, noise_index)],
            low_pass,
        )

        def compute(lo: int, hi: int):
            images, labels = source.read(start + lo, start + hi)
            x = resize(to_model_range(images, device), size)
            generators = sample_generators(seed, stream, range(start + lo, start + hi))
            adapted = renoise_denoise(
                model, schedule, x, steps, generators, guidance=low_pass, noise_index=noise_index, precision=precision
            )
            check_finite(adapted, f"{stream}, images {start + lo}..{start + hi} (shard {shard}), denoiser {checkpoint}")
            return from_model_range(adapted), labels

        fingerprint = {
            "inputs": inputs,
            "spec": spec,
            "checkpoint": checkpoint,
            "input_identities": {**input_identities(inputs), **checkpoint_identity},
            "respacing": respacing,
            "steps": steps,
            "noise_index": noise_index,
            "guidance": guidance,
            "range": [start, stop],
            "stream": stream,
            "seed": seed,
            "precision": precision,
            "compile": compile_mode,
        }

        def one_guided_step(n: int):  # eager even when compiled: the probe's batch would be a compile of its own
            x = torch.zeros(n, 3, size, size, device=device)
            generators = sample_generators(seed, "probe", range(n))
            return renoise_denoise(eager, schedule, x, 1, generators, low_pass, noise_index, precision)

        def chunks_per_call() -> int:  # asked only when chunks are pending
            return resolve_batch_size(batch_size, device, one_guided_step, stop - start, stream) // chunk

        return fill_store(
            output,
            stop - start,
            (size, size, 3),
            chunk,
            fingerprint,
            compute,
            desc=stream,
            codec=codec,
            chunks_per_call=chunks_per_call,
            labels=source.label_layout,
            keep_partial=True,
        )

    # every set complete first: then the renames
    finalize_all([(adapt_set(adapted_set, source), adapted_set.output) for adapted_set, source in zip(sets, sources)])


def adapt_problem(adapted_set: AdaptedSet, source: StoreSequence, spec: dict, batch_size: int | str) -> str | None:
    """What makes a set impossible to adapt as asked (None: nothing)."""
    problem = auto_problem(batch_size, adapted_set.process.guidance)
    if problem:
        return problem
    size = spec["image_size"]
    if not source.label_layout.fits(size):
        return (
            f"{adapted_set.inputs[0]} has label maps of shape {source.label_shape}: adapting its images at the "
            f"denoiser's {size}x{size} would leave them misaligned; make the images at the denoiser's size"
        )
    return None
