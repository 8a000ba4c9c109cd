"""The low-pass guidance and the guided re-noise/denoise loop."""

import pytest
import torch

from sda_core.diffusion.adapt import check_denoiser, renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance, low_pass
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.rng import randn_per_sample, sample_generators


def test_low_pass_keeps_constants_and_removes_the_finest_frequencies():
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(low_pass(flat, 2), flat, atol=1e-5, rtol=0)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0
    filtered = low_pass(checker.expand(1, 3, 16, 16).contiguous(), 2)
    assert filtered.abs().max() < 0.1 * checker.abs().max()


def _guidance_gradient(guidance, x0, reference):
    x0 = x0.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(guidance.loss(x0, low_pass(reference, guidance.downsample)), x0)
    return gradient


@pytest.mark.parametrize("norm, independent", [("sample", True), ("batch", False)])
def test_per_sample_norm_makes_samples_independent(norm, independent):
    torch.manual_seed(0)
    guidance = LowPassGuidance(scale=1.0, downsample=2, norm=norm)
    x0, reference = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    changed = x0.clone()
    changed[1] += 3.0
    first = _guidance_gradient(guidance, x0, reference)[0]
    second = _guidance_gradient(guidance, changed, reference)[0]
    assert torch.allclose(first, second) == independent


def test_bad_norm_is_rejected():
    with pytest.raises(ValueError, match="batch"):
        LowPassGuidance(norm="global")


def test_randn_per_sample_does_not_depend_on_the_batch():
    together = randn_per_sample(sample_generators(0, "s", [3, 4, 5]), (2, 2))
    alone = randn_per_sample(sample_generators(0, "s", [4]), (2, 2))
    torch.testing.assert_close(together[1], alone[0])
    assert not torch.equal(together[0], together[1])


def _adapt(model, images, indices, scale, norm="sample", noise_index="reference", steps=5):
    schedule = DiffusionSchedule(respacing=10)
    return renoise_denoise(
        model,
        schedule,
        images,
        steps,
        sample_generators(0, "test", indices),
        guidance=LowPassGuidance(scale=scale, downsample=2, norm=norm),
        noise_index=noise_index,
    )


def test_adaptation_is_batch_invariant_with_per_sample_norm(tiny_adm):
    torch.manual_seed(1)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    whole = _adapt(tiny_adm, images, range(4), scale=2.0)
    halves = torch.cat(
        [_adapt(tiny_adm, images[:2], range(2), scale=2.0), _adapt(tiny_adm, images[2:], range(2, 4), scale=2.0)]
    )
    torch.testing.assert_close(whole, halves, atol=1e-5, rtol=1e-5)
    assert whole.abs().max() <= 1.5  # x0 is clamped, the last step adds no noise


def test_guidance_at_scale_zero_is_the_plain_reverse_process(tiny_adm):
    """The one owner of "scale 0 means unguided": the unguided process (sda_core.processes: DDA's settings
    at scale 0, the misalignment check) computes exactly what the reverse process without guidance does."""
    from sda_core.processes import reverse_process

    torch.manual_seed(4)
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    plain = renoise_denoise(
        tiny_adm, DiffusionSchedule(respacing=10), images, 5, sample_generators(0, "test", range(3)), guidance=None
    )
    assert torch.equal(_adapt(tiny_adm, images, range(3), scale=0.0), plain)
    adaptation = {"respacing": 10, "steps": 5, "noise_index": "reference", "guidance": {"scale": 6.0, "downsample": 2}}
    assert reverse_process("unguided", adaptation, {}).guidance["scale"] == 0.0
    assert reverse_process("unguided-t999", adaptation, {}).guidance["scale"] == 0.0


def test_guidance_pulls_towards_the_reference(tiny_adm):
    torch.manual_seed(2)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    free = _adapt(tiny_adm, images, range(4), scale=0.0)
    guided = _adapt(tiny_adm, images, range(4), scale=5.0)

    def distance(x):
        return (low_pass(x, 2) - low_pass(images, 2)).pow(2).mean()

    assert distance(guided) < 0.5 * distance(free)


def test_noise_index_modes_differ_and_reference_needs_room(tiny_adm):
    torch.manual_seed(3)
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    assert not torch.equal(
        _adapt(tiny_adm, images, range(2), 1.0, noise_index="reference"),
        _adapt(tiny_adm, images, range(2), 1.0, noise_index="matched"),
    )
    _adapt(tiny_adm, images, range(2), 1.0, noise_index="matched", steps=10)  # fits: noise at index 9
    with pytest.raises(ValueError, match="does not fit"):
        _adapt(tiny_adm, images, range(2), 1.0, noise_index="reference", steps=10)


def test_unconfigured_denoiser_is_refused(tiny_adm):
    tiny_adm.requires_grad_(True)
    with pytest.raises(RuntimeError, match="configure_denoiser"):
        _adapt(tiny_adm, torch.zeros(1, 3, 8, 8), range(1), 1.0)
    tiny_adm.requires_grad_(False)
    check_denoiser(tiny_adm)


# The fast modes: guidance on every k-th step, and the diagonal Jacobian ---------------------------


class Recording:
    """A guidance that records the steps it is asked about and the gradient it receives; its loss is
    the weighted sum of x0_hat, so dL/dx0_hat = weight everywhere."""

    def __init__(self, weight, every=1, jacobian="full"):
        self.weight, self.every, self.jacobian = weight, every, jacobian
        self.steps, self.gradients = [], []

    def loss(self, out, x_t, i):
        self.steps.append(i)
        return (out.pred_x0 * self.weight).sum()

    def shift(self, gradient, out):
        self.gradients.append(gradient)
        return torch.zeros_like(gradient)


def _reverse(model, guidance, first_index=6):
    from sda_core.diffusion.adapt import reverse_diffusion

    torch.manual_seed(3)
    x = torch.randn(2, 3, 8, 8) * 0.3
    schedule = DiffusionSchedule(respacing=10)
    return schedule, reverse_diffusion(
        model, schedule, x, first_index, sample_generators(0, "fast", range(2)), guidance=guidance
    )


@pytest.mark.parametrize("every, guided", [(1, [6, 5, 4, 3, 2, 1, 0]), (2, [6, 4, 2, 0]), (3, [6, 3, 0]), (9, [6])])
def test_guidance_every_k_steps_guides_the_first_and_every_kth_step(tiny_adm, every, guided):
    recording = Recording(torch.ones(1), every=every)
    _reverse(tiny_adm, recording)
    assert recording.steps == guided


def test_guidance_every_step_and_zero_shift_leave_the_plain_reverse_process(tiny_adm):
    """A guidance that never moves the step: every k and either Jacobian give the unguided samples."""
    _, plain = _reverse(tiny_adm, None)
    for every, jacobian in ((1, "full"), (2, "diagonal")):
        _, guided = _reverse(tiny_adm, Recording(torch.ones(1), every, jacobian))
        torch.testing.assert_close(guided, plain, atol=1e-6, rtol=0)


def test_diagonal_jacobian_is_the_x0_gradient_over_sqrt_alpha_bar_and_skips_the_unet_backward(tiny_adm):
    """Expected from DDPM eq. 15 with eps held fixed: dL/dx_t = dL/dx0_hat / sqrt(alpha_bar_t), zero
    where x0_hat is clamped; and no backward pass through the denoiser (its hook never fires)."""
    backward_calls = []
    hook = tiny_adm.out.register_full_backward_hook(lambda *args: backward_calls.append(1))
    try:
        weight = torch.randn(1, 3, 8, 8)
        diagonal = Recording(weight, jacobian="diagonal")
        schedule, _ = _reverse(tiny_adm, diagonal, first_index=3)
        assert not backward_calls
        full = Recording(weight, jacobian="full")
        _reverse(tiny_adm, full, first_index=3)
        assert backward_calls
    finally:
        hook.remove()
    for i, gradient in zip([3, 2, 1, 0], diagonal.gradients):
        expected = weight / schedule.alphas_cumprod[i] ** 0.5
        inside = gradient != 0  # x0_hat clamped to [-1, 1] passes no gradient
        assert inside.float().mean() > 0.3
        torch.testing.assert_close(gradient[inside], expected.expand_as(gradient)[inside], rtol=1e-5, atol=1e-6)
    # the full gradient has the same leading term plus the UNet's part: close, not equal
    first_full, first_diagonal = full.gradients[0], diagonal.gradients[0]
    assert not torch.allclose(first_full, first_diagonal)
    cosine = torch.nn.functional.cosine_similarity(first_full.flatten(), first_diagonal.flatten(), dim=0)
    assert cosine > 0.5, cosine


def test_fast_mode_settings_are_checked():
    with pytest.raises(ValueError, match="every"):
        LowPassGuidance(every=0)
    with pytest.raises(ValueError, match="jacobian"):
        LowPassGuidance(jacobian="none")
