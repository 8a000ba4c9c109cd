"""On a CUDA device (skipped without one; `make gpu-check` runs them): bf16 and compiled steps against
fp32 eager, auto batch sizing, the GPU claim with a real device, and the tiny ImageNet world on cuda."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sda_core.batching import AUTO_CHUNK_SIZE, resolve_batch_size
from sda_core.compilation import compile_denoiser
from sda_core.diffusion.adapt import configure_denoiser, renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.models.adm import create_adm
from sda_core.precision import set_up_precision
from sda_core.rng import sample_generators

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make gpu-check on a GPU machine)"),
]
CUDA = torch.device("cuda")


@pytest.fixture
def cuda_adm(tiny_adm):
    return tiny_adm.to(CUDA)


def _adapt(model, images, precision="fp32", jacobian="full"):
    schedule = DiffusionSchedule(respacing=10)
    guidance = LowPassGuidance(scale=2.0, downsample=2, norm="sample", jacobian=jacobian)
    generators = sample_generators(0, "gpu", range(len(images)))
    return renoise_denoise(model, schedule, images, 5, generators, guidance, precision=precision)


def _images(n=4, size=8):
    generator = torch.Generator().manual_seed(8)
    return (torch.rand(n, 3, size, size, generator=generator) * 2 - 1).to(CUDA)


def test_bf16_and_fp16_adaptation_are_close_to_fp32(cuda_adm):
    set_up_precision("fp32", CUDA)
    exact = _adapt(cuda_adm, _images())
    for precision in ("bf16", "fp16"):
        difference = (_adapt(cuda_adm, _images(), precision) - exact).abs()
        assert 0 < difference.max() and difference.mean() < 0.01 and difference.quantile(0.99) < 0.05, precision


def test_cuda_matches_the_cpu_in_fp32(tiny_adm):
    """The same seeds give the same images on both devices, up to kernel rounding."""
    set_up_precision("fp32", CUDA)
    on_cpu = _adapt(tiny_adm, _images().cpu())
    on_gpu = _adapt(tiny_adm.to(CUDA), _images()).cpu()
    assert (on_gpu - on_cpu).abs().mean() < 1e-3


@pytest.mark.parametrize("mode", ["inductor", "cudagraphs"])
def test_compiled_steps_give_the_eager_images(cuda_adm, mode):
    set_up_precision("fp32", CUDA)
    eager = _adapt(cuda_adm, _images())
    compiled = compile_denoiser(cuda_adm, mode, CUDA)
    for _ in range(2):  # the second run replays the captured graphs
        torch.testing.assert_close(_adapt(compiled, _images()), eager, atol=1e-4, rtol=0)


def test_real_adm_adaptation_in_bf16_is_close_to_fp32_and_the_diagonal_mode_differs():
    """At the real 256 px ADM (random weights, a non-zero output layer): bf16 against fp32, batch 2."""
    torch.manual_seed(0)
    model = create_adm("adm-256-uncond")
    torch.nn.init.normal_(model.out[2].weight, std=0.01)  # the reference zero-initialises it: eps would be 0
    model = configure_denoiser(model.to(CUDA))
    set_up_precision("fp32", CUDA)
    images = _images(2, 256)
    exact, low = _adapt(model, images), _adapt(model, images, "bf16")
    assert 0 < (low - exact).abs().mean() < 0.02
    diagonal = _adapt(model, images, "bf16", jacobian="diagonal")
    assert (diagonal - low).abs().max() > 0 and (diagonal - exact).abs().mean() < 0.1


def test_auto_batch_measures_the_real_step_and_fits_the_free_memory(caplog):
    """At 256 px the memory, not the shard, limits the batch: well under 10,000 images fit any GPU."""
    torch.manual_seed(0)
    model = configure_denoiser(create_adm("adm-256-uncond").to(CUDA))
    set_up_precision("auto", CUDA)
    schedule = DiffusionSchedule(respacing=100)
    guidance = LowPassGuidance(scale=6.0, downsample=4, norm="sample")

    def step(n):
        x = torch.zeros(n, 3, 256, 256, device=CUDA)
        generators = sample_generators(0, "probe", range(n))
        return renoise_denoise(model, schedule, x, 1, generators, guidance, precision="bf16")

    with caplog.at_level("INFO"):
        batch = resolve_batch_size("auto", CUDA, step, 10_000, "test")
    assert batch % AUTO_CHUNK_SIZE == 0 and AUTO_CHUNK_SIZE <= batch < 10_000
    assert "GiB per image measured at batch 4" in caplog.text


def test_the_gpu_claim_locks_a_real_device_for_the_life_of_the_job(tmp_path):
    """A job process claims the device (two visible ids naming the same GPU, as a two-GPU host would), runs
    on it, and holds the lock until it exits; a second claim finds the device busy meanwhile."""
    device = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": f"{device},{device}", "SDA_GPU_LOCK_DIR": str(tmp_path)}
    env.pop("SLURM_JOB_ID", None)
    job = (
        "import os, sys, torch\n"
        "from sda_core.runtime import start_job\n"
        "device = start_job(None, 1, 'cuda')\n"
        "x = torch.ones(4, device=device)\n"
        "print(os.environ['CUDA_VISIBLE_DEVICES'], device, float(x.sum()), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", job], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        visible, where, total = process.stdout.readline().split()
        assert visible == device and where.startswith("cuda") and float(total) == 4.0
        from sda_core.devices import claim_gpu

        with pytest.raises(TimeoutError):
            claim_gpu([device], Path(tmp_path), timeout=0)
    finally:
        process.communicate("\n", timeout=60)
    claim_gpu([device], Path(tmp_path), timeout=0)  # freed when the job ended


def test_tiny_imagenet_world_runs_end_to_end_on_cuda(tmp_path):
    """The tiny ImageNet world of test_imagenet_workflow with device cuda, bf16 (auto) and auto batches."""
    import pandas as pd
    from test_imagenet_workflow import snakemake, tiny_imagenet_world
    from workflow_helpers import copy_workflow

    workdir = copy_workflow(tmp_path)
    config = tiny_imagenet_world(workdir)
    config["device"] = "cuda"
    config["adaptation"].update(batch_size="auto", guidance={"scale": 6.0, "downsample": 2, "norm": "sample"})
    (workdir / "cuda.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--configfile", "cuda.yaml", "--resources", "gpu=1", hub_cache=workdir / "empty")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    table = pd.read_csv(workdir / "results/tables/imagenet_c.csv")
    assert (table[table.corruption != "mean"].n == 6).all()
    log = (workdir / "results/logs/adapt/dda/fog/0.log").read_text()
    assert "batch_size auto" in log and "GiB free" in log
    from sda_core.store import open_store

    store = open_store(workdir / "results/adapted/dda/fog/shard-0.zarr")
    assert store.attrs["fingerprint"]["precision"] == "bf16"
