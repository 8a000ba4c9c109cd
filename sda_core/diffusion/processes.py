"""What each reverse process run on data means: its respacing, start index, noise index and guidance.

The one place that decides it (docs/method.md#stages):
- dda: the configured `adaptation` (respacing, start index N, noise index, low-pass guidance); MoD
  runs the same process on the generated images;
- unguided: the same with guidance scale 0 (the misalignment check on clean images);
- diffpure: `diffpure.respacing`, starting at the kept timestep nearest to `diffpure.t`, the noise
  matched to that step, no guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sda_core.diffusion.respacing import space_timesteps
from sda_core.image_sets import PROCESSES


@dataclass(frozen=True)
class ReverseProcess:
    respacing: int
    steps: int  # start index N: N denoising steps
    noise_index: str  # "reference" (noise to N, denoise from N-1) or "matched" (noise to N-1)
    guidance: dict | None  # LowPassGuidance arguments; None or scale 0: the plain reverse process

    def as_params(self) -> dict:
        """Plain values, for a rule's params (what Snakemake compares to decide a rerun)."""
        return asdict(self)


def steps_for_timestep(respacing: int, t: int, num_train_steps: int = 1000) -> int:
    """Denoising steps that start at the kept timestep nearest to t (DiffPure's t* in respaced terms)."""
    kept = space_timesteps(num_train_steps, respacing)
    return min(range(len(kept)), key=lambda i: abs(kept[i] - t)) + 1


def reverse_process(process: str, adaptation: dict, diffpure: dict) -> ReverseProcess:
    """The settings of `process` (PROCESSES) from the validated `adaptation` and `diffpure` config sections."""
    if process == "diffpure":
        return ReverseProcess(
            respacing=diffpure["respacing"],
            noise_index="matched",
            guidance=None,
            steps=steps_for_timestep(diffpure["respacing"], diffpure["t"]),
        )
    if process not in PROCESSES:
        raise ValueError(f"unknown reverse process {process!r}; valid: {', '.join(PROCESSES)}")
    guidance = dict(adaptation["guidance"])
    if process == "unguided":
        guidance["scale"] = 0.0
    return ReverseProcess(
        respacing=adaptation["respacing"],
        steps=adaptation["steps"],
        noise_index=adaptation["noise_index"],
        guidance=guidance,
    )
