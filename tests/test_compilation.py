"""compile: (sda_core.compilation): the compiled denoiser gives eager's images within float rounding."""

import pytest
import torch

from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.rng import sample_generators

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


def test_an_eager_reverse_loop_does_not_import_inductor():
    """Marking CUDA-graph steps imports inductor, about 8 s of every job's start-up: only for a model
    compiled with cudagraphs. Before, every sampling, adaptation and GDA job paid it (CI's tests took
    25 instead of 10 minutes)."""
    import subprocess
    import sys

    program = (
        "import sys, torch\n"
        "from sda_core.diffusion.adapt import configure_denoiser, reverse_diffusion\n"
        "from sda_core.diffusion.schedule import DiffusionSchedule\n"
        "from sda_core.models.denoisers import build_denoiser\n"
        "from sda_core.rng import sample_generators\n"
        "spec = dict(arch='adm', image_size=8, in_channels=3, model_channels=8, out_channels=6, num_res_blocks=1,\n"
        "            attention_resolutions='4', channel_mult=[1, 2], num_head_channels=8, norm_groups=4)\n"
        "model = configure_denoiser(build_denoiser(spec))\n"
        "reverse_diffusion(model, DiffusionSchedule(respacing=4), torch.zeros(1, 3, 8, 8), 2,\n"
        "                  sample_generators(0, 's', [0]))\n"
        "print('torch._inductor' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
