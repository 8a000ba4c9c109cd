"""The studies of the paper's argument beside the main table (docs/method.md#studies), from the
validated `studies` config section: which extra image sets, models and methods a run makes.

- timesteps: the clean set re-noised from each level of a list and denoised, unguided and with DDA's
  guidance, scored by f and f' (and, with matched_mod, by f'_t fine-tuned on MoD made from that level);
- generated_only: f' fine-tuned on the generator's images without MoD (f_c'), scored as "SDA (f_c')";
- set_size: f' fine-tuned on class-balanced subsets of the MoD set, scored as "SDA (k per class)";
- fusions: DDA's entropy- and confidence-based fusions and a weight tuned on the validation corruptions;
- gda_aligned: f'_GDA fine-tuned on MoD made by GDA's reverse process (guided by each architecture's f),
  scored on GDA's adapted images as "SDA on GDA (f'_GDA)" (sda_core.methods).

Torch-free: the workflow decides all of it while it parses.
"""

from __future__ import annotations

from dataclasses import dataclass

from sda_core.diffusion.respacing import nearest_level, noise_level, space_timesteps
from sda_core.image_sets import GDA_ALIGNED, GENERATED_ONLY, SweepLevel, finetuned, per_class


def steps_for_level(level: int, noise_index: str) -> int:
    return level if noise_index == "reference" else level + 1


def sweep_levels(timesteps: list[int], respacing: int, steps: int, noise_index: str) -> tuple[SweepLevel, ...]:
    """The distinct respaced levels nearest to `timesteps` (levels 1 .. respacing-1), as SweepLevels in
    increasing t; the level the configured DDA noises to is marked `configured`."""
    kept = space_timesteps(1000, respacing)
    levels = sorted({nearest_level(respacing, t, lowest=1) for t in timesteps})
    configured = noise_level(steps, noise_index)
    return tuple(SweepLevel(kept[n], configured=n == configured) for n in levels)


def swept_steps(t: int, respacing: int, noise_index: str) -> int:
    """The start index of a swept process whose images are noised to the kept timestep t."""
    kept = space_timesteps(1000, respacing)
    if t not in kept[1:]:
        raise ValueError(f"t={t} is not a level of a {respacing}-step respacing (levels: {kept[1:]})")
    return steps_for_level(kept.index(t), noise_index)


@dataclass(frozen=True)
class Studies:
    sweep: tuple[SweepLevel, ...]
    matched: bool
    variants: dict[str, str]  # method label -> fine-tuned model
    subset_sizes: dict[str, int]  # fine-tuned model -> images per class of its MoD subset
    fusions: bool
    gda_aligned: bool = False  # f'_GDA (a fine-tuned model of its own, not a variant scored on DDA's sets)

    @classmethod
    def from_config(cls, config: dict, has_clean: bool) -> Studies:
        studies, adaptation = config["studies"], config["adaptation"]
        timesteps = studies["timesteps"]
        sweep = ()
        if timesteps["enabled"] and has_clean:
            sweep = sweep_levels(
                timesteps["t"], adaptation["respacing"], adaptation["steps"], adaptation["noise_index"]
            )
        variants, subset_sizes = {}, {}
        if studies["generated_only"]["enabled"]:
            variants["SDA (f_c')"] = finetuned(GENERATED_ONLY)
        for k in studies["set_size"]["images_per_class"] if studies["set_size"]["enabled"] else []:
            model = finetuned(per_class(k))
            variants[f"SDA ({k} per class)"] = model
            subset_sizes[model] = k
        return cls(
            sweep,
            bool(sweep) and timesteps["matched_mod"],
            variants,
            subset_sizes,
            studies["fusions"]["enabled"],
            studies["gda_aligned"]["enabled"],
        )

    def finetuned_models(self) -> list[str]:
        """Every fine-tuned model of the run: f', its variants, the f'_t of the matched study and f'_GDA."""
        matched = [level.matched_model for level in self.sweep if not level.configured] if self.matched else []
        return [finetuned(), *self.variants.values(), *matched, *([finetuned(GDA_ALIGNED)] if self.gda_aligned else [])]

    def scored(self) -> frozenset[str]:
        """The studies whose rows are registry entries (sda_core.methods.ScoredMethod.study)."""
        return frozenset({"gda_aligned"} if self.gda_aligned else ())

    def label_of(self, model: str) -> str | None:
        """The method label of a fine-tuned variant (None if the run has no such variant)."""
        return next((label for label, variant in self.variants.items() if variant == model), None)

    @property
    def generated_only_label(self) -> str | None:
        return self.label_of(finetuned(GENERATED_ONLY))

    @property
    def smallest_subset_label(self) -> str | None:
        if not self.subset_sizes:
            return None
        return self.label_of(min(self.subset_sizes, key=self.subset_sizes.get))

    def mod_timestep(self, model: str) -> int | None:
        """The timestep of the MoD set a fine-tuned model learns from: its level's for f'_t, else None."""
        return next((level.t for level in self.sweep if not level.configured and level.matched_model == model), None)
