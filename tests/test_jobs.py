"""Stage functions on tiny models: results independent of the shard count, resume after a kill."""

from pathlib import Path

import numpy as np
import pytest
import torch
from shard_helpers import whole_and_in_two_shards

import sda_core.jobs.adapt as adapt_module
from sda_core.checkpoints import save_weights
from sda_core.jobs.adapt import AdaptedSet, adapt_job, adapt_sets_job
from sda_core.jobs.sample import sample_job
from sda_core.models.denoisers import build_denoiser
from sda_core.processes import ReverseProcess
from sda_core.store import StoreSequence, write_store
from sda_core.tasks.classification import sample_labels

TINY_DIT = dict(
    arch="dit",
    sample_size=8,
    patch_size=4,
    in_channels=3,
    out_channels=6,
    num_layers=1,
    num_attention_heads=2,
    attention_head_dim=8,
    num_embeds_ada_norm=3,
)


@pytest.fixture
def checkpoint(tmp_path, tiny_adm, tiny_adm_spec):
    path = tmp_path / "adm.safetensors"
    save_weights(tiny_adm, path)
    return str(path)


@pytest.fixture
def source_store(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "source.zarr"
    write_store(path, rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), np.arange(10) % 3, 4, {})
    return str(path)


def _adapt(inputs, output, spec, checkpoint, shard, num_shards, guidance):
    process = ReverseProcess(respacing=10, steps=4, noise_index="reference", guidance=guidance)
    adapt_job(
        [inputs],
        str(output),
        spec,
        checkpoint,
        process=process,
        batch_size=2,
        shard=shard,
        num_shards=num_shards,
        stream="dda/test",
        seed=0,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize("norm", ["sample", "batch"])
def test_adaptation_does_not_depend_on_the_shard_count(tmp_path, tiny_adm_spec, checkpoint, source_store, norm):
    """Shards are cut on batch boundaries, so even the batch-wide guidance norm sees the same batches."""
    guidance = {"scale": 1.0, "downsample": 2, "norm": norm}
    _adapt(source_store, tmp_path / "one.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    for k in range(3):
        _adapt(source_store, tmp_path / f"three-{k}.zarr", tiny_adm_spec, checkpoint, k, 3, guidance)
    one = StoreSequence([tmp_path / "one.zarr"]).read(0, 10)
    three = StoreSequence([tmp_path / f"three-{k}.zarr" for k in range(3)]).read(0, 10)
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])
    assert not np.array_equal(one[0], StoreSequence([source_store]).read(0, 10)[0])


def test_killed_adaptation_resumes_at_the_next_chunk(tmp_path, tiny_adm_spec, checkpoint, source_store, monkeypatch):
    guidance = {"scale": 1.0, "downsample": 2, "norm": "sample"}
    _adapt(source_store, tmp_path / "reference.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    real, calls = adapt_module.renoise_denoise, []

    def killed_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(adapt_module, "renoise_denoise", killed_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _adapt(source_store, tmp_path / "killed.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    calls.clear()
    monkeypatch.setattr(adapt_module, "renoise_denoise", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    _adapt(source_store, tmp_path / "killed.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    assert len(calls) == 3  # 5 batches of 2, two finished before the kill
    np.testing.assert_array_equal(
        StoreSequence([tmp_path / "killed.zarr"]).read(0, 10)[0],
        StoreSequence([tmp_path / "reference.zarr"]).read(0, 10)[0],
    )


def test_a_killed_job_of_several_sets_keeps_its_finished_stores_and_renames_them_together(
    tmp_path, tiny_adm_spec, checkpoint, source_store, monkeypatch
):
    """target_jobs: grouped. Snakemake deletes a killed job's declared outputs before rerunning it, so a
    finished set stays at `.partial` until the last one is done; the rerun resumes it, not redoes it."""
    guidance = {"scale": 1.0, "downsample": 2, "norm": "sample"}
    processes = {
        "dda": ReverseProcess(respacing=10, steps=4, noise_index="reference", guidance=guidance),
        "unguided": ReverseProcess(respacing=10, steps=2, noise_index="reference", guidance=None),
    }

    def run(folder):
        sets = [AdaptedSet([source_store], str(tmp_path / folder / f"{p}.zarr"), pr, p) for p, pr in processes.items()]
        adapt_sets_job(sets, tiny_adm_spec, checkpoint, 2, 0, 1, 0, torch.device("cpu"))

    for name, process in processes.items():  # each set alone: the reference
        adapt_job(
            [source_store],
            str(tmp_path / f"{name}.zarr"),
            tiny_adm_spec,
            checkpoint,
            process,
            2,
            0,
            1,
            name,
            0,
            torch.device("cpu"),
        )
    real, calls = adapt_module.renoise_denoise, []

    def killed_in_the_second_set(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:  # 5 batches of the first set, then the second's second batch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(adapt_module, "renoise_denoise", killed_in_the_second_set)
    with pytest.raises(KeyboardInterrupt):
        run("grouped")
    assert not (tmp_path / "grouped/dda.zarr").exists() and (tmp_path / "grouped/dda.zarr.partial").is_dir()
    calls.clear()
    monkeypatch.setattr(adapt_module, "renoise_denoise", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    run("grouped")
    assert len(calls) == 4  # the second set's 4 remaining batches; the first set's none
    for name in processes:
        assert not (tmp_path / f"grouped/{name}.zarr.partial").exists()
        np.testing.assert_array_equal(
            StoreSequence([tmp_path / f"grouped/{name}.zarr"]).read(0, 10)[0],
            StoreSequence([tmp_path / f"{name}.zarr"]).read(0, 10)[0],
        )


@pytest.mark.parametrize("changed", ["checkpoint", "input store"])
def test_a_partial_store_is_not_resumed_once_an_input_was_remade(
    tmp_path, tiny_adm, tiny_adm_spec, checkpoint, source_store, changed
):
    """A job killed before its last chunk, then an input remade at the same path (a retrained denoiser, a
    target set made again with other images) before the rerun: the rerun must not keep the chunks
    computed from the old input (the paths alone are the same). A store is known by the fingerprint it
    records (which names its own inputs' identities), a file by its bytes."""
    import zarr

    guidance = {"scale": 1.0, "downsample": 2, "norm": "sample"}
    _adapt(source_store, tmp_path / "killed.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    (tmp_path / "killed.zarr").rename(tmp_path / "killed.zarr.partial")  # as a kill before the last chunk leaves it
    zarr.open_group(str(tmp_path / "killed.zarr.partial"), mode="r+")["done"][-1] = False
    if changed == "checkpoint":
        with torch.no_grad():
            tiny_adm.out[2].weight.mul_(-1.0)
        save_weights(tiny_adm, checkpoint)
    else:
        images = np.random.default_rng(1).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
        write_store(source_store, images, np.arange(10) % 3, 4, {"made": "again, otherwise"})  # what made it differs
    _adapt(source_store, tmp_path / "killed.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    _adapt(source_store, tmp_path / "fresh.zarr", tiny_adm_spec, checkpoint, 0, 1, guidance)
    np.testing.assert_array_equal(
        StoreSequence([tmp_path / "killed.zarr"]).read(0, 10)[0],
        StoreSequence([tmp_path / "fresh.zarr"]).read(0, 10)[0],
    )


def test_sampling_labels_are_explicit_and_shard_invariant(tmp_path):
    torch.manual_seed(0)
    model = build_denoiser(TINY_DIT)
    path = tmp_path / "dit.safetensors"
    save_weights(model, path)

    def run(output, shard, shards):
        sample_job(
            str(output),
            TINY_DIT,
            str(path),
            num_classes=3,
            images_per_class=3,
            respacing=5,
            batch_size=2,
            shard=shard,
            num_shards=shards,
            seed=0,
            device=torch.device("cpu"),
        )

    one, two = whole_and_in_two_shards(run, tmp_path, 9)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], sample_labels(np.arange(9), 3))
    np.testing.assert_array_equal(np.bincount(one[1]), [3, 3, 3])


@pytest.mark.parametrize("job", ["classifier", "denoiser"])
def test_training_jobs_are_bitwise_reproducible(tmp_path, source_store, tiny_adm_spec, job):
    """Same seed, same weights, bit for bit (CPU): random initialisation included."""
    from safetensors.torch import load_file

    from sda_core.jobs.train_denoiser import train_denoiser_job
    from sda_core.jobs.train_model import train_model_job

    def run(output):
        if job == "classifier":
            train_model_job(
                [source_store],
                str(output),
                "resnet10t",
                {},
                3,
                {"optimizer": "adamw", "lr": 1e-3, "epochs": 1, "batch_size": 4, "schedule": "constant"},
                {"resize": 8, "crop": 8},
                0,
                torch.device("cpu"),
            )
        else:
            train_denoiser_job(
                source_store, str(output), tiny_adm_spec, {"steps": 2, "batch_size": 4}, False, 0, torch.device("cpu")
            )
        return load_file(str(output))

    torch.manual_seed(123)  # whatever state the process is in before the job
    first = run(tmp_path / "a.safetensors")
    torch.manual_seed(456)
    second = run(tmp_path / "b.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_training_job_of_several_models_makes_each_as_its_own_job_would_and_a_kill_retrains_none_finished(
    tmp_path, source_store, monkeypatch
):
    """target_jobs: grouped: every fine-tuned model of an architecture in one job. Each model is the same
    bytes as a job of its own makes; killed in the second model, the rerun does not train the first again,
    and nothing reaches a declared output before all are done."""
    import sda_core.jobs.train_model as train_module
    from sda_core.jobs.train_model import Training, train_models_job

    common = dict(
        timm_name="resnet10t",
        timm_kwargs={},
        num_classes=3,
        settings={"optimizer": "sgd", "lr": 1e-2, "epochs": 1, "batch_size": 4, "schedule": "constant"},
        preprocess={"resize": 8, "crop": 8},
        seed=0,
        device=torch.device("cpu"),
    )
    init = tmp_path / "init.safetensors"
    train_models_job([Training([source_store], str(init))], **common)
    trainings = [
        Training([source_store], str(tmp_path / "grouped/all.safetensors")),
        Training([source_store], str(tmp_path / "grouped/subset.safetensors"), images_per_class=2),
    ]
    for training in trainings:  # each alone: the reference
        alone = Training(training.stores, str(tmp_path / Path(training.output).name), training.images_per_class)
        train_models_job([alone], init_weights=str(init), **common)
    real, calls = train_module.train_model_job, []

    def killed_in_the_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_model_job", killed_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        train_models_job(trainings, init_weights=str(init), **common)
    assert not any(Path(t.output).exists() for t in trainings)
    calls.clear()
    monkeypatch.setattr(train_module, "train_model_job", lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    train_models_job(trainings, init_weights=str(init), **common)
    assert calls == [f"{trainings[1].output}.partial"]
    for training in trainings:
        assert Path(training.output).read_bytes() == (tmp_path / Path(training.output).name).read_bytes()
        assert not Path(f"{training.output}.partial").exists() and not Path(f"{training.output}.partial.json").exists()
    for training in trainings:
        Path(training.output).unlink()
    monkeypatch.setattr(train_module, "train_model_job", killed_in_the_second)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        train_models_job(trainings, init_weights=str(init), **common)
    monkeypatch.setattr(train_module, "train_model_job", real)
    train_models_job([Training([source_store], str(init))], **{**common, "seed": 1})  # the source model retrained
    monkeypatch.setattr(train_module, "train_model_job", lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    calls.clear()
    train_models_job(trainings, init_weights=str(init), **common)
    assert calls == [f"{t.output}.partial" for t in trainings]  # the kept first model learnt from the old one
