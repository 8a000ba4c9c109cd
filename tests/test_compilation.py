"""compile: (sda_core.compilation): the compiled denoiser gives eager's images within float rounding."""

import pytest
import torch

from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.seeding import sample_generators

CPU = torch.device("cpu")


def test_compile_modes_are_checked(tiny_adm):
    assert compile_denoiser(tiny_adm, "none", CPU) is tiny_adm
    with pytest.raises(ValueError, match="cudagraphs needs a CUDA device"):
        compile_denoiser(tiny_adm, "cudagraphs", CPU)
    with pytest.raises(ValueError, match="none, inductor, cudagraphs"):
        compile_denoiser(tiny_adm, "jit", CPU)


@pytest.mark.compile
def test_inductor_gives_the_eager_images(tiny_adm):
    """Guided and unguided steps (every=2 runs both graphs) and a smaller last batch (a recompile):
    the same images as eager within 1e-5 of [-1, 1]; inductor fuses and reorders float operations, so
    bitwise equality is not expected."""
    torch.manual_seed(6)
    images = torch.rand(6, 3, 8, 8) * 2 - 1
    schedule = DiffusionSchedule(respacing=10)
    guidance = LowPassGuidance(scale=2.0, downsample=2, norm="sample", every=2)
    compiled = compile_denoiser(tiny_adm, "inductor", CPU)

    def adapt(model, lo, hi):
        generators = sample_generators(0, "compile", range(lo, hi))
        return renoise_denoise(model, schedule, images[lo:hi], 5, generators, guidance)

    for lo, hi in ((0, 4), (4, 6)):
        eager, fast = adapt(tiny_adm, lo, hi), adapt(compiled, lo, hi)
        torch.testing.assert_close(fast, eager, atol=1e-5, rtol=0)
        assert not torch.equal(eager, images[lo:hi])
