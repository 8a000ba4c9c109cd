"""adaptation.batch_size: auto (sda_core.batching): the layout stays fixed, the batch fits the memory."""

import numpy as np
import pytest
import torch

import sda_core.jobs.adapt as adapt_module
from sda_core.batching import AUTO_CHUNK_SIZE, FILL, batch_that_fits, chunk_size, resolve_batch_size
from sda_core.checkpoints import save_weights
from sda_core.jobs.adapt import adapt_job
from sda_core.processes import ReverseProcess
from sda_core.store import StoreSequence, write_store

CPU = torch.device("cpu")
GIB = 2**30


def test_the_batch_is_whole_chunks_of_the_free_memory_share():
    assert batch_that_fits(40 * GIB, 2 * GIB, 4, 1000) == int(FILL * 20) // 4 * 4
    assert batch_that_fits(1 * GIB, 2 * GIB, 4, 1000) == 4  # at least one chunk, even when it does not fit
    assert batch_that_fits(1000 * GIB, 1 * GIB, 4, 10) == 12  # at most the shard, rounded up to a chunk
    assert chunk_size("auto") == AUTO_CHUNK_SIZE and chunk_size(7) == 7


def test_auto_on_the_cpu_is_one_chunk_and_measures_nothing():
    assert resolve_batch_size("auto", CPU, lambda n: pytest.fail("no probe on the CPU"), 100, "t") == AUTO_CHUNK_SIZE
    assert resolve_batch_size(6, CPU, lambda n: pytest.fail("no probe"), 100, "t") == 6


@pytest.fixture
def job_inputs(tmp_path, tiny_adm):
    save_weights(tiny_adm, tmp_path / "adm.safetensors")
    rng = np.random.default_rng(3)
    write_store(tmp_path / "in.zarr", rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), np.arange(10) % 3, 5, {})
    return tmp_path


def _adapt(tmp_path, spec, name, batch_size, norm="sample"):
    process = ReverseProcess(respacing=10, steps=3, noise_index="reference", guidance={"scale": 1.0, "norm": norm})
    output = tmp_path / f"{name}.zarr"
    adapt_job([str(tmp_path / "in.zarr")], str(output), spec, str(tmp_path / "adm.safetensors"), process,
              batch_size, 0, 1, "dda/t", 0, CPU)  # fmt: skip
    return StoreSequence([output]).read(0, 10)[0].astype(int)


def test_auto_batches_over_several_chunks_give_the_fixed_batch_images(job_inputs, tiny_adm_spec, monkeypatch):
    """With the per-sample norm an image does not depend on its batch: auto's batch of 8 (two chunks of
    4, as a GPU with room would choose) gives batch 4's images, up to one 8-bit level of float rounding."""
    fixed = _adapt(job_inputs, tiny_adm_spec, "fixed", 4)
    calls = []
    real = adapt_module.renoise_denoise
    monkeypatch.setattr(adapt_module, "resolve_batch_size", lambda *args: 8)
    monkeypatch.setattr(
        adapt_module,
        "renoise_denoise",
        lambda model, s, x, *a, **k: (calls.append(len(x)), real(model, s, x, *a, **k))[1],
    )
    auto = _adapt(job_inputs, tiny_adm_spec, "auto", "auto")
    assert calls == [8, 2]  # chunks of 4: two per call, then the last, shorter one
    assert np.abs(auto - fixed).max() <= 1


def test_auto_with_the_batch_wide_norm_is_refused(job_inputs, tiny_adm_spec):
    with pytest.raises(ValueError, match="depend on the GPU"):
        _adapt(job_inputs, tiny_adm_spec, "auto", "auto", norm="batch")
