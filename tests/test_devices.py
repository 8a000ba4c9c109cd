"""The local GPU allocator, with fake device lists (no GPU needed)."""
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
    code = ("import os, sys; from pathlib import Path; from sda_core.devices import claim_gpu; "
            f"claim_gpu(['7'], Path({str(tmp_path)!r}), timeout=0); os._exit(9)")
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
