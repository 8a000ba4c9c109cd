"""Gaussian diffusion schedule: betas, respacing, q_sample, posterior, learned-range variance.

Notation follows Ho et al. 2020 (DDPM) and Nichol & Dhariwal 2021 (IDDPM), as in guided-diffusion:
a schedule of `betas` over the respaced steps, indices i = 0..K-1, and `timesteps[i]`, the original
(1000-step) timestep the denoiser is conditioned on. All tables are float64 and indexed on the CPU;
values are cast to the sample's dtype/device when used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sda_core.diffusion.respacing import space_timesteps


def linear_betas(num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """DDPM's linear schedule, rescaled so any step count spans the same noise range (IDDPM eq. 'linear')."""
    scale = 1000.0 / num_train_steps
    return np.linspace(scale * beta_start, scale * beta_end, num_train_steps, dtype=np.float64)


@dataclass(frozen=True)
class DiffusionOutput:
    mean: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor


class DiffusionSchedule:
    """A (possibly respaced) DDPM schedule with the IDDPM learned-range variance.

    Respacing keeps the marginals q(x_t | x_0) of the kept timesteps and derives new betas from them:
    beta'_i = 1 - abar_{t_i} / abar_{t_{i-1}} (IDDPM appendix, 'respacing').
    """

    def __init__(
        self,
        num_train_steps: int = 1000,
        respacing: int | None = None,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ):
        full_alphas_cumprod = np.cumprod(1.0 - linear_betas(num_train_steps, beta_start, beta_end))
        self.timesteps = space_timesteps(num_train_steps, respacing or num_train_steps)
        kept = full_alphas_cumprod[self.timesteps]
        self.betas = 1.0 - kept / np.append(1.0, kept[:-1])
        self.num_steps = len(self.betas)
        self.num_train_steps = num_train_steps

        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        # q(x_{t-1} | x_t, x_0) (DDPM eq. 6-7)
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # the variance is 0 at i=0; clip the log as IDDPM does, with the value of i=1
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
            if self.num_steps > 1
            else np.maximum(self.posterior_variance, 1e-20)
        )
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(1.0 - self.betas) / (1.0 - self.alphas_cumprod)
        )

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _take(table: np.ndarray, i: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """table[i] broadcast to the shape of `like` (one value per batch element)."""
        values = torch.as_tensor(table, dtype=torch.float64)[torch.as_tensor(i).cpu()]
        values = values.to(device=like.device, dtype=like.dtype)
        if values.ndim == 0:
            values = values.expand(like.shape[0])
        return values.view(-1, *([1] * (like.ndim - 1)))

    def model_timesteps(self, i: torch.Tensor | int, batch: int, device) -> torch.Tensor:
        """The original timestep t_i for a batch, what the denoiser is conditioned on."""
        t = torch.as_tensor(self.timesteps, dtype=torch.long)[torch.as_tensor(i).cpu()]
        return t.expand(batch).to(device) if t.ndim == 0 else t.to(device)

    # -- forward process -------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, i: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) eps (DDPM eq. 4)."""
        return (
            self._take(np.sqrt(self.alphas_cumprod), i, x0) * x0
            + self._take(np.sqrt(1.0 - self.alphas_cumprod), i, x0) * noise
        )

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, i) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clipped log-variance of q(x_{i-1} | x_i, x_0) (DDPM eq. 7)."""
        mean = self._take(self.posterior_mean_coef1, i, x_t) * x0 + self._take(self.posterior_mean_coef2, i, x_t) * x_t
        return mean, self._take(self.posterior_log_variance_clipped, i, x_t)

    # -- reverse process -------------------------------------------------------------------------
    def predict_x0(self, x_t: torch.Tensor, i, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) (DDPM eq. 4 solved for x_0)."""
        return (
            self._take(np.sqrt(1.0 / self.alphas_cumprod), i, x_t) * x_t
            - self._take(np.sqrt(1.0 / self.alphas_cumprod - 1.0), i, x_t) * eps
        )

    def p_mean_variance(
        self, model_output: torch.Tensor, x_t: torch.Tensor, i, clip_x0: bool = True
    ) -> DiffusionOutput:
        """p(x_{i-1} | x_i) from a learned-sigma output [eps, v] (IDDPM eq. 15).

        log sigma^2 = (v+1)/2 log beta_i + (1-(v+1)/2) log beta~_i, with v in [-1, 1] by design.
        An output with as many channels as x_t carries eps only and gets the fixed 'large' variance beta_i.
        """
        channels = x_t.shape[1]
        if model_output.shape[1] == 2 * channels:
            eps, v = model_output.split(channels, dim=1)
            min_log = self._take(self.posterior_log_variance_clipped, i, x_t)
            max_log = self._take(np.log(self.betas), i, x_t)
            frac = (v + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
        elif model_output.shape[1] == channels:
            eps = model_output
            log_variance = self._take(np.log(np.append(self.posterior_variance[1], self.betas[1:])), i, x_t)
        else:
            raise ValueError(
                f"model output has {model_output.shape[1]} channels; expected {channels} or "
                f"{2 * channels} for a {channels}-channel sample"
            )
        pred_x0 = self.predict_x0(x_t, i, eps)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1, 1)
        mean, _ = self.q_posterior(pred_x0, x_t, i)
        return DiffusionOutput(mean=mean, log_variance=log_variance, pred_x0=pred_x0)

    def ancestral_step(self, out: DiffusionOutput, i: int, noise: torch.Tensor) -> torch.Tensor:
        """x_{i-1} = mu + sigma z, with no noise added at the last step i = 0 (DDPM alg. 2)."""
        if i == 0:
            return out.mean
        return out.mean + torch.exp(0.5 * out.log_variance) * noise


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x) of 8-bit data in [-1, 1] under a Gaussian discretised to bins of width 2/255 (DDPM sec. 3.3)."""

    def cdf(v):  # standard normal CDF, tanh approximation as in the reference
        return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))

    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def hybrid_loss(
    schedule: DiffusionSchedule,
    model_output: torch.Tensor,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    i: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """IDDPM's L_hybrid = L_simple + L_vlb (eq. 16), the objective ADM and DiT were trained with.

    L_vlb sees the eps prediction through a stop-gradient so it trains only the variance (IDDPM sec. 3.1);
    it is KL(q(x_{i-1}|x_i,x_0) || p(x_{i-1}|x_i)) in bits, or the decoder NLL at i = 0.
    A model without a variance output is trained on L_simple alone.
    """
    channels = x0.shape[1]
    eps = model_output[:, :channels]
    mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
    if model_output.shape[1] == channels:
        return mse.mean()
    frozen = torch.cat([eps.detach(), model_output[:, channels:]], dim=1)
    p = schedule.p_mean_variance(frozen, x_t, i, clip_x0=False)
    true_mean, true_log_var = schedule.q_posterior(x0, x_t, i)
    kl = normal_kl(true_mean, true_log_var, p.mean, p.log_variance).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance).mean(dim=(1, 2, 3)) / math.log(2.0)
    vlb = torch.where(i.to(x0.device) == 0, nll, kl)
    return (mse + vlb * schedule.num_steps / 1000.0).mean()
