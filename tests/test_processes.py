"""What each reverse process means, decided once (sda_core.processes)."""

import pytest

from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.processes import ReverseProcess, reverse_process, steps_for_timestep

ADAPTATION = {
    "respacing": 100,
    "steps": 50,
    "noise_index": "reference",
    "guidance": {"scale": 6.0, "downsample": 4, "norm": "batch"},
}
DIFFPURE = {"respacing": 100, "t": 150}


def test_dda_is_the_configured_adaptation():
    assert reverse_process("dda", ADAPTATION, DIFFPURE) == ReverseProcess(
        respacing=100, steps=50, noise_index="reference", guidance={"scale": 6.0, "downsample": 4, "norm": "batch"}
    )


def test_unguided_is_dda_with_the_same_settings_but_the_scale():
    """What scale 0 computes: tests/test_guidance_adapt.py (test_guidance_at_scale_zero_is_the_plain_...)."""
    unguided, dda = reverse_process("unguided", ADAPTATION, DIFFPURE), reverse_process("dda", ADAPTATION, DIFFPURE)
    assert {**unguided.guidance, "scale": dda.guidance["scale"]} == dda.guidance
    assert (unguided.respacing, unguided.steps, unguided.noise_index) == (100, 50, "reference")
    assert ADAPTATION["guidance"]["scale"] == 6.0  # the config is not modified


def test_diffpure_starts_at_the_kept_timestep_nearest_to_t_with_matched_noise_and_no_guidance():
    diffpure = reverse_process("diffpure", ADAPTATION, {"respacing": 20, "t": 150})
    assert diffpure == ReverseProcess(respacing=20, steps=4, noise_index="matched", guidance=None)
    # the step it denoises from is the kept timestep nearest to t (158 of 0, 53, 105, 158, ...)
    assert DiffusionSchedule(respacing=20).timesteps[diffpure.steps - 1] == 158
    assert steps_for_timestep(100, 150) == 16  # t=151
    assert reverse_process("diffpure", ADAPTATION, DIFFPURE).as_params()["steps"] == 16


def test_an_unknown_process_is_refused():
    with pytest.raises(ValueError, match="dda, diffpure, unguided"):
        reverse_process("ddim", ADAPTATION, DIFFPURE)
