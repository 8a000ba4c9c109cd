"""Precision (sda_core.precision): what auto means per device, and bf16 / fp16 against fp32 on the CPU."""

import numpy as np
import pytest
import torch
import zarr

from sda_core.checkpoints import save_weights
from sda_core.diffusion.adapt import renoise_denoise
from sda_core.diffusion.guidance import LowPassGuidance
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.jobs.adapt import adapt_job
from sda_core.loading import ArrayRows
from sda_core.model_training import TrainSettings, train_model
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.pixels import to_unit
from sda_core.precision import autocast, resolve_precision, set_up_precision
from sda_core.processes import ReverseProcess
from sda_core.rng import sample_generators
from sda_core.store import write_store

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_bf16_on_cuda_and_fp32_on_the_cpu():
    assert resolve_precision("auto", CUDA) == "bf16"
    assert resolve_precision("auto", CPU) == "fp32"
    assert [resolve_precision(p, CPU) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        resolve_precision("half", CPU)
    with pytest.raises(ValueError, match="resolved"):
        autocast(CPU, "auto")


def test_tf32_is_on_with_half_precision_on_cuda_only():
    """The flags are process-wide settings; setting them initialises no device."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        assert set_up_precision("auto", CUDA) == "bf16"
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert set_up_precision("fp32", CUDA) == "fp32"
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert set_up_precision("fp16", CUDA) == "fp16"  # a recorded half precision always means TF32 too
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_up_precision("fp32", CUDA)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        set_up_precision("auto", CPU)
        assert torch.backends.cuda.matmul.allow_tf32  # a CPU job leaves them alone
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_guided_adaptation_is_close_to_fp32(tiny_adm, precision):
    """Same noise, same guidance: the images differ by rounding only, amplified at a few pixels where
    x0_hat crosses its clamp (one fp16 pixel of 192 moved by 0.26); the mean moves by about a thousandth."""
    torch.manual_seed(4)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    schedule = DiffusionSchedule(respacing=10)
    guidance = LowPassGuidance(scale=2.0, downsample=2, norm="sample")

    def adapt(p):
        return renoise_denoise(
            tiny_adm, schedule, images, 5, sample_generators(0, "p", range(4)), guidance, precision=p
        )

    exact, low = adapt("fp32"), adapt(precision)
    difference = (low - exact).abs()
    assert 0 < difference.quantile(0.99) < 0.05 and difference.mean() < 0.005, (difference.max(), difference.mean())


def test_adaptation_records_the_resolved_precision_and_refuses_half_precision_on_the_cpu(
    tmp_path, tiny_adm, tiny_adm_spec
):
    """auto on the CPU is fp32, so a store written under auto resumes under fp32 and vice versa."""
    checkpoint = tmp_path / "adm.safetensors"
    save_weights(tiny_adm, checkpoint)
    rng = np.random.default_rng(0)
    write_store(tmp_path / "in.zarr", rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), np.zeros(4, int), 2, {})
    process = ReverseProcess(respacing=10, steps=3, noise_index="reference", guidance={"scale": 1.0, "norm": "sample"})

    def adapt(precision):
        out = str(tmp_path / f"{precision}.zarr")
        adapt_job(
            [str(tmp_path / "in.zarr")], out, tiny_adm_spec, str(checkpoint), process, 2, 0, 1, "s", 0, CPU, precision
        )
        return zarr.open_group(out, mode="r")

    assert adapt("auto").attrs["fingerprint"]["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision: bf16 on the CPU is refused"):
        adapt("bf16")
    assert not (tmp_path / "bf16.zarr.partial").exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_classifier_training_learns_in_half_precision(precision):
    """The toy problem of test_classifiers in autocast: fp16 through the gradient scaler, bf16 without.
    Without the oneDNN guard, this failed with NaN after another test's bf16 pass in the same process."""
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    images = np.zeros((64, 8, 8, 3), np.uint8)
    images[labels == 1, :, :4] = 200
    images += rng.integers(0, 40, images.shape, dtype=np.uint8)
    torch.manual_seed(0)
    model = create_classifier("convnext_atto", 2, {"depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "patch_size": 1})
    settings = TrainSettings(
        optimizer="adamw", lr=3e-3, weight_decay=0.0, epochs=6, batch_size=16, schedule="constant", grad_clip=5.0
    )
    preprocess = Preprocess(resize=8, crop=8)
    with torch.backends.mkldnn.flags(enabled=False):  # oneDNN's cache fault (sda_core.precision)
        train_model(model, ArrayRows(images, labels), settings, preprocess, CPU, precision=precision)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        accuracy = (model(preprocess(to_unit(images))).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9
