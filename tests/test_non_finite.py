"""NaN and Inf stop the run where they appear, naming the stage, the data and the model."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sda_core.jobs.adapt as adapt_module
from sda_core.checkpoints import CheckpointError, load_weights, save_weights
from sda_core.diffusion.training import DenoiserTrainSettings, train_denoiser
from sda_core.finite import NonFiniteError
from sda_core.jobs.adapt import adapt_job
from sda_core.jobs.predict import predict_job
from sda_core.loading import ArrayRows
from sda_core.model_training import TrainSettings, train_model
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.models.denoisers import build_denoiser
from sda_core.processes import ReverseProcess
from sda_core.store import write_store


def _images(n=16, size=8):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 2


def _poison(model):
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    return model


def test_denoiser_training_stops_on_a_non_finite_loss_naming_the_model_and_step(tiny_adm_spec):
    images, _ = _images()
    model = _poison(build_denoiser(tiny_adm_spec))
    with pytest.raises(NonFiniteError, match=r"training the unconditional denoiser: the loss is nan at step 1 of 3"):
        train_denoiser(
            model,
            images,
            None,
            DenoiserTrainSettings(steps=3, batch_size=4),
            torch.device("cpu"),
            name="the unconditional denoiser",
        )


def test_classifier_training_stops_on_a_non_finite_loss(tmp_path):
    images, labels = _images()
    model = _poison(create_classifier("resnet10t", 2))
    settings = TrainSettings(optimizer="sgd", lr=0.1, epochs=1, batch_size=8, schedule="constant")
    with pytest.raises(NonFiniteError, match=r"training resnet10t: the loss is nan at epoch 1, step 1"):
        train_model(
            model,
            ArrayRows(images, labels),
            settings,
            Preprocess(resize=8, crop=8),
            torch.device("cpu"),
            name="resnet10t",
        )


def test_checkpoints_with_nan_are_neither_saved_nor_loaded(tmp_path, tiny_adm_spec):
    model = build_denoiser(tiny_adm_spec)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(iter(state))
    state[key].view(-1)[0] = float("inf")
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match=rf"broken.safetensors holds NaN or Inf in 1 tensor\(s\): {key}"):
        load_weights(build_denoiser(tiny_adm_spec), tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="refusing to save"):
        save_weights(_poison(model), tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()


def test_adaptation_refuses_non_finite_images_naming_stage_chunk_and_model(
    tmp_path, tiny_adm, tiny_adm_spec, monkeypatch
):
    save_weights(tiny_adm, tmp_path / "adm.safetensors")
    images, labels = _images(6)
    write_store(tmp_path / "in.zarr", images, labels, 2, {})
    monkeypatch.setattr(adapt_module, "renoise_denoise", lambda model, schedule, x, *a, **k: torch.full_like(x, np.nan))
    with pytest.raises(NonFiniteError, match=r"dda/fog, images 0\.\.2 \(shard 0\), denoiser .*adm.safetensors"):
        adapt_job(
            [str(tmp_path / "in.zarr")],
            str(tmp_path / "out.zarr"),
            tiny_adm_spec,
            str(tmp_path / "adm.safetensors"),
            ReverseProcess(10, 3, "reference", None),
            batch_size=2,
            shard=0,
            num_shards=1,
            stream="dda/fog",
            seed=0,
            device=torch.device("cpu"),
        )
    assert not (tmp_path / "out.zarr").exists()


def test_prediction_refuses_non_finite_outputs(tmp_path, monkeypatch):
    images, labels = _images(4)
    write_store(tmp_path / "fog.zarr", images, labels, 2, {})

    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x), 2), float("nan"))

    from sda_core.tasks.classification import Classification

    monkeypatch.setattr(Classification, "load_model", lambda *a, **k: Broken())
    with pytest.raises(NonFiniteError, match=r"predict target/fog, images 0\.\.4, source resnet10t \(s.safetensors\)"):
        predict_job(
            {"target/fog": [str(tmp_path / "fog.zarr")]},
            str(tmp_path / "p.npz"),
            "resnet10t",
            {},
            2,
            {"source": "s.safetensors"},
            {"target/fog": ["source"]},
            {"resize": 8, "crop": 8},
            torch.device("cpu"),
        )
    assert not (tmp_path / "p.npz").exists()
