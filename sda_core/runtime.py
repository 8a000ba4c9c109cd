"""What every workflow job does first: send its output to the log, set threads, claim and pick the device."""

from __future__ import annotations

import logging
import os
import sys

import torch

from sda_core.devices import claim_gpu_for_job


def start_job(log_path: str | os.PathLike | None, threads: int, device: str) -> torch.device:
    """Redirect stdout/stderr (tqdm progress included) to the job's log and configure torch.

    `device` has no default: a job that may use a GPU says so ("auto", "cuda"), and only then claims
    one; "cpu" never touches the GPU locks (a CPU job waiting for a GPU would hold its job slot).
    """
    if log_path is not None:
        stream = open(log_path, "a", buffering=1)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    torch.set_num_threads(max(1, threads))
    if device != "cpu":
        claim_gpu_for_job()  # before anything initialises CUDA
    return resolve_device(device)


def start_snakemake_job(snakemake) -> torch.device:
    """start_job for a workflow script: the job's log and threads, and the device its rule's params name
    (rules/common.smk: job_device, "cpu" for every rule without the gpu resource)."""
    return start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)


def run_task(snakemake) -> str:
    """The task of the job's run: the one its world poses (sda_core.worlds), read from the config rather
    than a rule param, so that a rule's params, and so its finished outputs, stay as they were."""
    from sda_core.worlds import WORLD_TASKS

    return WORLD_TASKS[snakemake.config["world"]]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is visible to this job")
    return torch.device(device)
