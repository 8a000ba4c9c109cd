"""Diffusion maths checked against diffusers' DDPMScheduler, an independent implementation."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from sda_core.diffusion.respacing import space_timesteps
from sda_core.diffusion.schedule import DiffusionSchedule, hybrid_loss


def reference_scheduler():
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        variance_type="learned_range",
        clip_sample=True,
        clip_sample_range=1.0,
    )


def test_full_schedule_matches_diffusers():
    ours = DiffusionSchedule(1000)
    theirs = reference_scheduler()
    np.testing.assert_allclose(ours.alphas_cumprod, theirs.alphas_cumprod.double().numpy(), rtol=1e-5)


def test_respacing_reproduces_reference_timesteps():
    steps = space_timesteps(1000, 100)
    assert len(steps) == 100 and steps[0] == 0 and steps[-1] == 999
    assert steps[50] == 505 and steps[49] == 494  # DDA: noise to index 50 (t=505), first model step t=494
    assert space_timesteps(1000, 20)[3] == 158
    with pytest.raises(ValueError):
        space_timesteps(1000, 0)


def test_respaced_marginals_equal_the_full_ones():
    full, spaced = DiffusionSchedule(1000), DiffusionSchedule(1000, respacing=100)
    np.testing.assert_allclose(spaced.alphas_cumprod, full.alphas_cumprod[spaced.timesteps], rtol=1e-12)


def test_q_sample_matches_add_noise():
    ours, theirs = DiffusionSchedule(1000, respacing=100), reference_scheduler()
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    for i in (0, 17, 50, 99):
        expected = theirs.add_noise(x0, noise, torch.tensor([ours.timesteps[i]] * 3))
        torch.testing.assert_close(ours.q_sample(x0, i, noise), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("i", [1, 12, 49, 99])
def test_learned_range_step_matches_diffusers(i):
    """One respaced ancestral step with a learned-range output, clamped x0, against DDPMScheduler.step."""
    ours, theirs = DiffusionSchedule(1000, respacing=100), reference_scheduler()
    theirs.set_timesteps(timesteps=list(reversed(ours.timesteps)))
    torch.manual_seed(i)
    x_t = torch.randn(2, 3, 8, 8)
    model_output = torch.cat([torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8) * 2 - 1], dim=1)
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    mine = ours.ancestral_step(ours.p_mean_variance(model_output, x_t, i), i, noise)
    reference = theirs.step(
        model_output, ours.timesteps[i], x_t, generator=torch.Generator().manual_seed(7)
    ).prev_sample
    torch.testing.assert_close(mine, reference, atol=1e-4, rtol=1e-4)


def test_hybrid_loss_is_finite_and_trains_the_variance_only_through_vlb():
    schedule = DiffusionSchedule(1000)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    i = torch.tensor([0, 10, 500, 999])
    x_t = schedule.q_sample(x0, i, noise)
    output = torch.cat([noise.clone(), torch.zeros_like(x0)], dim=1).requires_grad_(True)
    loss = hybrid_loss(schedule, output, x0, x_t, i, noise)
    loss.backward()
    assert torch.isfinite(loss)
    # a perfect eps has zero MSE gradient, and the VLB never reaches eps through the stop-gradient
    assert output.grad[:, :3].abs().max() == 0
    assert output.grad[:, 3:].abs().max() > 0
