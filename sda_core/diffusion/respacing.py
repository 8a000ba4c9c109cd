"""Respacing: which of the training timesteps a shortened schedule keeps (torch-free: the workflow
decides start indices with it while it parses)."""

from __future__ import annotations


def space_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """The `num_steps` original timesteps kept by respacing, evenly strided with rounding (IDDPM sec. 4)."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"respacing must be in 1..{num_train_steps}, got {num_steps}")
    if num_steps == 1:
        return [0]
    stride = (num_train_steps - 1) / (num_steps - 1)
    return [round(i * stride) for i in range(num_steps)]


def noise_level(steps: int, noise_index: str) -> int:
    """The respaced index a re-noise/denoise of `steps` denoising steps noises its images to: `steps`
    with noise_index "reference" (the reference code's off-by-one), `steps - 1` with "matched"."""
    if noise_index not in ("reference", "matched"):
        raise ValueError(f"noise_index must be 'reference' or 'matched', got {noise_index!r}")
    return steps if noise_index == "reference" else steps - 1


def nearest_level(respacing: int, t: int, lowest: int = 0, num_train_steps: int = 1000) -> int:
    """The respaced index (at least `lowest`) whose kept timestep is nearest to t; ties go to the lower."""
    kept = space_timesteps(num_train_steps, respacing)
    return min(range(lowest, len(kept)), key=lambda i: (abs(kept[i] - t), i))
