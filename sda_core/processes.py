"""What each reverse process run on data means: its respacing, start index, noise index and guidance.

The one place that decides it (docs/method.md#stages):
- dda: the configured `adaptation` (respacing, start index N, noise index, low-pass guidance); MoD
  runs the same process on the generated images;
- unguided: the same with guidance scale 0 (the misalignment check on clean images);
- dda-t<t>, unguided-t<t> (the timestep study): the same, noised to the kept timestep t instead;
- diffpure: `diffpure.respacing`, starting at the kept timestep nearest to `diffpure.t`, the noise
  matched to that step, no guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sda_core.diffusion.respacing import nearest_level
from sda_core.image_sets import parse_process
from sda_core.studies import swept_steps


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
    return nearest_level(respacing, t, num_train_steps=num_train_steps) + 1


def reverse_process(process: str, adaptation: dict, diffpure: dict) -> ReverseProcess:
    """The settings of `process` (sda_core.image_sets.parse_process) from the validated `adaptation` and
    `diffpure` config sections."""
    base, t = parse_process(process)
    if base == "diffpure":
        return ReverseProcess(
            respacing=diffpure["respacing"],
            noise_index="matched",
            guidance=None,
            steps=steps_for_timestep(diffpure["respacing"], diffpure["t"]),
        )
    guidance = dict(adaptation["guidance"])
    if base == "unguided":
        guidance["scale"] = 0.0
    respacing = adaptation["respacing"]
    return ReverseProcess(
        respacing=respacing,
        steps=adaptation["steps"] if t is None else swept_steps(t, respacing, adaptation["noise_index"]),
        noise_index=adaptation["noise_index"],
        guidance=guidance,
    )
