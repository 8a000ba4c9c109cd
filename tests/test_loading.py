"""The classifier passes' input pipelines (sda_core.loading): the same results whatever the worker count."""

import time

import numpy as np
import torch
from safetensors.torch import load_file

from sda_core.jobs.predict import predict_job
from sda_core.jobs.train_model import train_model_job
from sda_core.loading import ArrayRows, StoreRows, TrainingImages, WaitClock, loader_workers
from sda_core.model_training import TrainSettings, make_augment, train_model
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.store import write_store

CPU = torch.device("cpu")
TINY_CONVNEXT = {"depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "patch_size": 1}


def _stores(tmp_path, n=14, size=20):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % 3
    write_store(tmp_path / "a.zarr", images[: n // 2], labels[: n // 2], 3, {})
    write_store(tmp_path / "b.zarr", images[n // 2 :], labels[n // 2 :], 3, {})
    return [str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")], images, labels


def test_workers_are_the_threads_but_the_models_on_a_gpu_and_none_on_the_cpu():
    assert [loader_workers(t, torch.device("cuda")) for t in (1, 2, 8)] == [0, 1, 7]
    assert loader_workers(8, CPU) == 0  # the model's own threads use the job's cores


def test_augmentation_is_seeded_per_image_and_epoch(tmp_path):
    paths, images, _ = _stores(tmp_path)
    augment = make_augment("imagenet", Preprocess(resize=20, crop=16))
    data = TrainingImages(StoreRows(paths), augment, seed=0)
    first = data.__getitems__([(0, 3), (0, 9)])
    assert torch.equal(data[(0, 3)][0], first[0][0])  # alone or in a batch, the same draws
    assert not torch.equal(data[(1, 3)][0], first[0][0])  # another epoch, other draws
    state = torch.random.get_rng_state()
    data[(0, 5)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left as it was


def test_fine_tuning_with_augmentation_does_not_depend_on_the_worker_count(tmp_path):
    """timm's RandAugment in two worker processes or in the job's own, micro-batches as the loader's items:
    bitwise the same weights. Before the per-image seeding, the draws followed the order in which one
    global generator was consumed."""
    paths, _, _ = _stores(tmp_path)
    settings = TrainSettings(
        optimizer="adamw", lr=1e-2, epochs=2, batch_size=6, micro_batch_size=4, schedule="constant", augment="imagenet"
    )
    trained = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = create_classifier("convnext_atto", 3, TINY_CONVNEXT)
        train_model(model, StoreRows(paths), settings, Preprocess(resize=20, crop=16), CPU, workers=workers)
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        assert torch.equal(value, trained[1][name]), name


def test_streamed_fine_tuning_equals_the_in_memory_one(tmp_path):
    """The job streams its subset from the stores; training on the same rows held in memory is the same."""
    paths, images, labels = _stores(tmp_path, n=18)
    settings = {"optimizer": "sgd", "lr": 0.05, "epochs": 2, "batch_size": 4, "schedule": "constant"}
    preprocess = {"resize": 20, "crop": 16}
    train_model_job(paths, str(tmp_path / "job.safetensors"), "convnext_atto", TINY_CONVNEXT, 3, settings,
                         preprocess, seed=1, device=CPU, images_per_class=4, workers=1)  # fmt: skip
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(3)]))
    torch.manual_seed(1)
    model = create_classifier("convnext_atto", 3, TINY_CONVNEXT)
    train_model(model, ArrayRows(images[keep], labels[keep]), TrainSettings.from_config(settings, 1),
                     Preprocess(**preprocess), CPU)  # fmt: skip
    job = load_file(str(tmp_path / "job.safetensors"))
    for name, value in model.state_dict().items():
        assert torch.equal(job[name], value), name


def test_predictions_do_not_depend_on_the_worker_count(tmp_path):
    paths, _, labels = _stores(tmp_path)
    torch.manual_seed(0)
    from sda_core.checkpoints import save_weights

    save_weights(create_classifier("convnext_atto", 3, TINY_CONVNEXT), tmp_path / "f.safetensors")
    outputs = []
    for workers in (0, 2):
        out = tmp_path / f"p{workers}.npz"
        predict_job({"target/fog": paths}, str(out), "convnext_atto", TINY_CONVNEXT, 3,
                    {"source": str(tmp_path / "f.safetensors")}, {"target/fog": ["source"]},
                    {"resize": 20, "crop": 16}, CPU, batch_size=4, workers=workers)  # fmt: skip
        outputs.append(dict(np.load(out)))
    assert outputs[0].keys() == outputs[1].keys()
    for key in outputs[0]:
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
    np.testing.assert_array_equal(outputs[0]["labels/target/fog"], labels)


def test_the_wait_clock_measures_time_spent_waiting_for_batches():
    def slow():
        for k in range(3):
            time.sleep(0.05)
            yield k

    clock = WaitClock()
    assert list(clock.batches(slow())) == [0, 1, 2]
    assert clock.waiting >= 0.15
    assert "waiting for data" in clock.report("test")
