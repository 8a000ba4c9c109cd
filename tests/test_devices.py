"""The local GPU allocator, with fake device lists (no GPU needed)."""

import os
import subprocess
import sys

import pytest

from sda_core.devices import claim_gpu, claim_gpu_for_job, visible_gpus


def test_each_claim_gets_a_different_free_device(tmp_path):
    first, fd_first = claim_gpu(["0", "1"], tmp_path, timeout=0)
    second, _ = claim_gpu(["0", "1"], tmp_path, timeout=0)
    assert (first, second) == ("0", "1")
    with pytest.raises(TimeoutError, match="0, 1"):
        claim_gpu(["0", "1"], tmp_path, timeout=0)
    import os

    os.close(fd_first)  # the job ended
    assert claim_gpu(["0", "1"], tmp_path, timeout=0)[0] == "0"


def test_a_killed_job_frees_its_device(tmp_path):
    code = (
        "import os, sys; from pathlib import Path; from sda_core.devices import claim_gpu; "
        f"claim_gpu(['7'], Path({str(tmp_path)!r}), timeout=0); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert claim_gpu(["7"], tmp_path, timeout=0)[0] == "7"


def test_visible_devices_come_from_the_environment():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3,"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_job_claim_sets_cuda_visible_devices_unless_slurm_decides(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert claim_gpu_for_job(env, tmp_path) == "4" and env["CUDA_VISIBLE_DEVICES"] == "4"
    other = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert claim_gpu_for_job(other, tmp_path) == "5"
    slurm = {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "12"}
    assert claim_gpu_for_job(slurm, tmp_path) is None and slurm["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert claim_gpu_for_job({"CUDA_VISIBLE_DEVICES": "3"}, tmp_path) == "3"


def test_a_cpu_job_neither_locks_nor_waits(tmp_path, monkeypatch):
    from workflow_helpers import every_gpu_locked

    from sda_core.runtime import start_job

    with every_gpu_locked(tmp_path) as fake_gpus:
        for name, value in fake_gpus.items():
            monkeypatch.setenv(name, value)
        assert start_job(None, 1, "cpu").type == "cpu"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # nothing claimed


def test_rules_without_a_gpu_resource_run_while_every_gpu_is_locked(tmp_path):
    """prepare_digits and corrupt declare no gpu: under `device: auto` on a host whose GPUs are all
    held by adaptation jobs they must still run at once, on the CPU (a claim would wait forever)."""
    import yaml
    from workflow_helpers import TINY, copy_workflow, every_gpu_locked, run_snakemake

    workdir = copy_workflow(tmp_path)
    (workdir / "auto.yaml").write_text(yaml.safe_dump({**TINY, "device": "auto"}))
    targets = ["results/data/digits/test.zarr", "results/target/fog.zarr"]
    with every_gpu_locked(tmp_path / "locks") as fake_gpus:
        try:
            run_snakemake(workdir, *targets, "--configfile", "auto.yaml", env=fake_gpus, timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail("a CPU job waited for a GPU lock")
    assert all((workdir / target / "zarr.json").is_file() for target in targets)
