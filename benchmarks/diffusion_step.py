"""Time the two expensive steps at the paper's real architectures, with random weights.

- one guided DDA step of the ADM 256x256 unconditional UNet: forward + gradient w.r.t. the input,
  weights frozen (docs/method.md#cost: 4.49 TFLOP per image);
- one DiT-XL/2 forward on 32x32x4 latents (0.237 TFLOP per image).

Prints images/s, peak memory and, when the device's peak is known (or given), the fraction of it, and
writes them to benchmarks/results/<date>_diffusion_step_<hardware>.csv.
On a GPU both fp32 and bf16 autocast run in the same process so their ratio is comparable.

    python benchmarks/diffusion_step.py                    # CPU: batch 1, fp32
    python benchmarks/diffusion_step.py --batch 16         # GPU: fp32 and bf16
"""

from __future__ import annotations

import argparse
import resource
import time
from contextlib import nullcontext

import torch
from record import write_results

from sda_core.diffusion.adapt import configure_denoiser
from sda_core.diffusion.guidance import LowPassGuidance, low_pass
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.models.adm import create_adm
from sda_core.models.dit import DiTDenoiser
from sda_core.models.specs import resolve_spec

TFLOP_PER_IMAGE = {"ADM-256 guided step": 4.49, "DiT-XL/2 forward": 0.237}
# dense tensor-core peaks (TFLOP/s) from the vendors' data sheets, bf16 / fp32 (TF32 off)
PEAK_TFLOPS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5)}


def guided_step(model, schedule, batch, device):
    x = torch.randn(batch, 3, 256, 256, device=device)
    reference = low_pass(torch.randn_like(x), 4)
    guidance = LowPassGuidance(scale=6.0, downsample=4, norm="batch")
    t = schedule.model_timesteps(49, batch, device)

    def step():
        x_in = x.detach().requires_grad_(True)
        out = schedule.p_mean_variance(model(x_in, t).float(), x_in, 49)
        (gradient,) = torch.autograd.grad(guidance.loss(out.pred_x0, reference), x_in)
        return gradient

    return step


def dit_forward(model, batch, device):
    x = torch.randn(batch, 4, 32, 32, device=device)
    t = torch.full((batch,), 500, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.no_grad():
            return model(x, t, y)

    return step


def measure(step, device, precision, repeats):
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with autocast:
        step()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on a GPU, 1 on the CPU")
    parser.add_argument("--repeats", type=int, default=None, help="default: 10 on a GPU, 1 on the CPU")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        nargs=2,
        metavar=("BF16", "FP32"),
        default=None,
        help="the device's peak, when it is not in the built-in table",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (16 if gpu else 1)
    repeats = args.repeats or (10 if gpu else 1)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    peaks = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    precisions = ("fp32", "bf16") if gpu else ("fp32",)
    print(f"device: {name}; batch {batch}; {repeats} timed repeats; peak TFLOP/s (bf16, fp32): {peaks or 'unknown'}")

    torch.manual_seed(0)
    with torch.device(device):
        adm = configure_denoiser(create_adm("adm-256-uncond"))
        dit_spec = resolve_spec("dit-xl-2-256")
        dit_spec.pop("arch")
        dit = configure_denoiser(DiTDenoiser(**dit_spec))
    steps = {
        "ADM-256 guided step": guided_step(adm, DiffusionSchedule(respacing=100), batch, device),
        "DiT-XL/2 forward": dit_forward(dit, batch, device),
    }
    rows = []
    for label, step in steps.items():
        for precision in precisions:
            seconds, peak_gib = measure(step, device, precision, repeats)
            achieved = TFLOP_PER_IMAGE[label] * batch / seconds
            fraction = 100 * achieved / peaks[precision == "fp32"] if peaks else None
            print(
                f"{label:22s} {precision}: {batch / seconds:8.3f} images/s, {seconds * 1000:9.1f} ms/batch, "
                f"{achieved:8.2f} TFLOP/s{f', {fraction:.1f}% of peak' if peaks else ''}, "
                f"peak memory {peak_gib:.2f} GiB"
            )
            rows.append(
                {
                    "step": label,
                    "precision": precision,
                    "batch": batch,
                    "repeats": repeats,
                    "images_per_s": round(batch / seconds, 4),
                    "ms_per_batch": round(seconds * 1000, 1),
                    "tflops": round(achieved, 3),
                    "percent_of_peak": fraction and round(fraction, 2),
                    "peak_memory_gib": round(peak_gib, 2),
                }
            )
    write_results("diffusion_step", rows, device)


if __name__ == "__main__":
    main()
