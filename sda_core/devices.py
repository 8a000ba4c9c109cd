"""GPU claiming for local multi-GPU runs.

Snakemake limits how many GPU jobs run at once (`--resources gpu=N`) but does not say which GPU a
job gets. Each job therefore takes an exclusive lock on one free device (flock on a per-device file)
and restricts itself to it with CUDA_VISIBLE_DEVICES, before CUDA initialises. The kernel drops the
lock when the process ends, however it ends, so a killed job frees its GPU. Under SLURM the
scheduler assigns devices and nothing is claimed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    return Path(os.environ.get("SDA_GPU_LOCK_DIR", f"/tmp/sda-gpu-locks-{os.getuid()}"))


def visible_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPUs this job may use, without initialising CUDA: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [device.strip() for device in env["CUDA_VISIBLE_DEVICES"].split(",") if device.strip()]
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (FileNotFoundError, subprocess.SubprocessError):
        return []
    return listing.split()


def claim_gpu(
    devices: Sequence[str], lock_dir: Path, timeout: float | None = None, poll_seconds: float = 5.0
) -> tuple[str, int]:
    """Lock the first free device; returns it and the open lock file descriptor (keep it open).

    Waits for a device to be freed, up to `timeout` seconds (None: forever), then raises TimeoutError.
    """
    if not devices:
        raise ValueError("no GPU to claim")
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for device in devices:
            fd = os.open(lock_dir / f"gpu-{device}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return device, fd
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"all GPUs {', '.join(devices)} are locked in {lock_dir}")
        time.sleep(poll_seconds)


_held_locks: list[int] = []  # lock descriptors stay open for the life of the job process


def claim_gpu_for_job(env: MutableMapping[str, str] = os.environ, lock_dir: Path | None = None) -> str | None:
    """Restrict this job to one free GPU when several are visible and no scheduler chose one."""
    if "SLURM_JOB_ID" in env:
        return None
    devices = visible_gpus(env)
    if len(devices) <= 1:
        return devices[0] if devices else None
    device, fd = claim_gpu(devices, lock_dir or default_lock_dir())
    _held_locks.append(fd)
    env["CUDA_VISIBLE_DEVICES"] = device
    log.info("claimed GPU %s of %s", device, ", ".join(devices))
    return device
