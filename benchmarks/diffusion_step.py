"""Time the guided adaptation step at the paper's real ADM-256 (random weights), in one process and one
table: the reference code's settings expressed in this project, then this project's precisions,
compiled steps and fast modes; and the DiT-XL/2 forward of the generator.

Each row runs sda_core.diffusion.adapt.reverse_diffusion (the loop the jobs run) for a few steps of DDA's
low-pass guidance and reports:
- images/s of one step, and at DDA's 50 steps per image (the target: >= 2.1 on an H200);
- the ratio to the reference row measured in the same run;
- TFLOP/s and the fraction of the device's dense peak (4.49 TFLOP per image per guided step:
  docs/method.md#cost; a diagonal-Jacobian step is one forward pass, a third of it);
- peak memory per image: torch.cuda.max_memory_allocated above what was allocated before the row, or
  on the CPU the resident set's high-water mark (VmHWM, reset per row) above the resident set before it
  (after malloc_trim, so that memory an earlier row freed does not hide this row's), divided by the batch.

Rows: "reference" is the reference code's GPU setting (fp16, batch 4, one guidance norm per batch,
eager); on the CPU it is fp32 batch 1, what the reference runs there. Then fp32 eager, bf16 (CUDA),
bf16 + inductor, bf16 + CUDA graphs (CUDA), and the diagonal-Jacobian fast mode. Figures go to
benchmarks/results/<date>_diffusion_step_<hardware>.csv.

    python benchmarks/diffusion_step.py                          # CPU: batch 1, eager rows only
    python benchmarks/diffusion_step.py --batch 16               # GPU: every row
    python benchmarks/diffusion_step.py --rows fp32 inductor     # a subset (names: --help)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import time
from dataclasses import dataclass, replace

import torch
from record import write_results

from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import configure_denoiser, reverse_diffusion
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.models.adm import create_adm
from sda_core.models.dit import DiTDenoiser
from sda_core.models.specs import resolve_spec
from sda_core.precision import autocast, set_up_precision
from sda_core.rng import sample_generators

GUIDED_STEP_TFLOP = 4.49  # per image: UNet forward + input gradient (docs/method.md#cost)
DIT_FORWARD_TFLOP = 0.237
STEPS_PER_IMAGE = 50  # DDA: 50 guided steps per image
# dense tensor-core peaks (TFLOP/s) from the vendors' data sheets: bf16/fp16, fp32 (TF32 off)
PEAK_TFLOPS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5)}


@dataclass(frozen=True)
class Row:
    name: str
    precision: str
    compile_mode: str = "none"
    batch: int | None = None  # None: --batch
    norm: str = "sample"
    jacobian: str = "full"
    gpu_only: bool = False
    cpu_default: bool = True  # run on the CPU without --rows (compiling the 256 px UNet there takes minutes)


ROWS = [
    Row("reference", "fp16", batch=4, norm="batch"),
    Row("fp32", "fp32"),
    Row("bf16", "bf16", gpu_only=True),
    Row("inductor", "bf16", "inductor", cpu_default=False),
    Row("cudagraphs", "bf16", "cudagraphs", gpu_only=True),
    Row("diagonal", "bf16", jacobian="diagonal"),
]


def cpu_row(row: Row) -> Row:
    """On the CPU half precision is slower than fp32 (and refused by the jobs): fp32, and the reference
    row at batch 1 (the issue's CPU comparison)."""
    if row.name == "reference":
        return replace(row, precision="fp32", batch=1)
    return replace(row, precision="fp32")


def resident_gib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def reset_peak(device: torch.device) -> float:
    """Start a new peak; returns the memory in use now (GiB)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**30
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the resident set is what is live
    with open("/proc/self/clear_refs", "w") as file:  # VmHWM := VmRSS (Linux)
        file.write("5")
    return resident_gib()


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_guided(model, row: Row, batch: int, steps: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Seconds per step (after a warm-up run that compiles) and peak memory per image (GiB)."""
    schedule = DiffusionSchedule(respacing=100)
    generator = torch.Generator(device="cpu").manual_seed(0)
    images = (torch.rand(batch, 3, 256, 256, generator=generator) * 2 - 1).to(device)
    guidance = LowPassGuidance(scale=6.0, downsample=4, norm=row.norm, jacobian=row.jacobian).towards(images)
    model = compile_denoiser(model, row.compile_mode, device)
    if device.type == "cuda":
        set_up_precision(row.precision, device)  # TF32 with half precision, as the jobs run; strict fp32 rows

    def run():
        x = images.clone()
        return reverse_diffusion(
            model,
            schedule,
            x,
            steps - 1,
            sample_generators(0, "bench", range(batch)),
            guidance=guidance,
            precision=row.precision,
        )

    before = reset_peak(device)
    run()  # warm-up: compilation, CUDA graph capture, allocator growth
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    sync(device)
    seconds = (time.perf_counter() - start) / (repeats * steps)
    return seconds, (peak_gib(device) - before) / batch


def time_dit(model, precision: str, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    x = torch.randn(batch, 4, 32, 32, device=device)
    t = torch.full((batch,), 500, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    before = reset_peak(device)
    with torch.no_grad(), autocast(device, precision):
        model(x, t, y)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x, t, y)
        sync(device)
    return (time.perf_counter() - start) / repeats, (peak_gib(device) - before) / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on a GPU, 1 on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="guided steps per timed run (default: 5 GPU, 1 CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (default: 3 GPU, 1 CPU)")
    parser.add_argument("--rows", nargs="+", choices=[row.name for row in ROWS] + ["dit"], default=None)
    parser.add_argument(
        "--peak-tflops", type=float, nargs=2, metavar=("HALF", "FP32"), default=None, help="the device's dense peak"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (16 if gpu else 1)
    steps = args.steps or (5 if gpu else 1)
    repeats = args.repeats or (3 if gpu else 1)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    peaks = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    wanted = args.rows or [r.name for r in ROWS if gpu or r.cpu_default] + ["dit"]
    rows = [r if gpu else cpu_row(r) for r in ROWS if r.name in wanted and (gpu or not r.gpu_only)]
    print(f"device: {name}; batch {batch}; {steps} steps x {repeats} timed runs; peak TFLOP/s: {peaks or 'unknown'}")

    torch.manual_seed(0)
    with torch.device(device):
        adm = configure_denoiser(create_adm("adm-256-uncond"))
    results, reference_rate = [], None
    for row in rows:
        row_batch = row.batch or batch
        try:
            seconds, per_image = time_guided(adm, row, row_batch, steps, repeats, device)
        except torch.OutOfMemoryError:
            print(f"{row.name:11s} {row.precision} batch {row_batch:3d}: out of memory", flush=True)
            results.append({"row": row.name, "precision": row.precision, "batch": row_batch, "note": "out of memory"})
            continue
        rate = row_batch / seconds
        reference_rate = reference_rate or (rate if row.name == "reference" else None)
        tflop = GUIDED_STEP_TFLOP / (3 if row.jacobian == "diagonal" else 1)
        achieved = tflop * rate
        fraction = 100 * achieved / peaks[row.precision == "fp32"] if peaks else None
        results.append(
            {
                "row": row.name,
                "step": "ADM-256 guided step",
                "precision": row.precision,
                "compile": row.compile_mode,
                "norm": row.norm,
                "jacobian": row.jacobian,
                "batch": row_batch,
                "image_steps_per_s": round(rate, 4),
                "images_per_s_at_50_steps": round(rate / STEPS_PER_IMAGE, 5),
                "vs_reference": reference_rate and round(rate / reference_rate, 3),
                "tflops": round(achieved, 3),
                "percent_of_peak": fraction and round(fraction, 2),
                "peak_memory_gib_per_image": round(per_image, 3),
            }
        )
        print(
            f"{row.name:11s} {row.precision} batch {row_batch:3d}: {rate:8.3f} image-steps/s, "
            f"{rate / STEPS_PER_IMAGE:7.4f} images/s at 50 steps"
            f"{f', {rate / reference_rate:5.2f}x reference' if reference_rate else ''}, {achieved:7.2f} TFLOP/s"
            f"{f' ({fraction:.1f}% of peak)' if peaks else ''}, {per_image:.2f} GiB per image",
            flush=True,
        )
    del adm
    if "dit" in wanted:
        dit_spec = resolve_spec("dit-xl-2-256")
        dit_spec.pop("arch")
        with torch.device(device):
            dit = configure_denoiser(DiTDenoiser(**dit_spec))
        for precision in ("fp32", "bf16") if gpu else ("fp32",):
            seconds, per_image = time_dit(dit, precision, batch, repeats, device)
            achieved = DIT_FORWARD_TFLOP * batch / seconds
            fraction = 100 * achieved / peaks[precision == "fp32"] if peaks else None
            results.append(
                {
                    "row": f"dit-{precision}",
                    "step": "DiT-XL/2 forward",
                    "precision": precision,
                    "compile": "none",
                    "batch": batch,
                    "image_steps_per_s": round(batch / seconds, 4),
                    "tflops": round(achieved, 3),
                    "percent_of_peak": fraction and round(fraction, 2),
                    "peak_memory_gib_per_image": round(per_image, 3),
                }
            )
            print(f"DiT-XL/2    {precision}: {batch / seconds:8.3f} images/s, {per_image:.2f} GiB per image")
    write_results("diffusion_step" + (f"_{'-'.join(args.rows)}" if args.rows else ""), results, device)


if __name__ == "__main__":
    main()
