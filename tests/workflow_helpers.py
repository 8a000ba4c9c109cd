"""The tiny digits configuration and how tests run the real workflow on it, in a temporary copy."""

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from workflow_copy import SNAKEMAKE, WORKFLOW_PARTS, imagenet_placeholders  # noqa: E402, F401 (re-exported)
from workflow_copy import copy_workflow as _copy_workflow  # noqa: E402

# The tiny digits configuration, runnable by hand: snakemake --cores 2 --configfile tests/config/tiny_digits.yaml
TINY = yaml.safe_load((ROOT / "tests/config/tiny_digits.yaml").read_text())
# A tiny LLaVA architecture entry (kind vlm), added to TINY by the tests of the vlm path
TINY_LLAVA = yaml.safe_load((ROOT / "tests/config/tiny_llava.yaml").read_text())
# The tiny digit-scenes world (task segmentation): snakemake --cores 2 --configfile tests/config/tiny_digit_scenes.yaml
TINY_SCENES = yaml.safe_load((ROOT / "tests/config/tiny_digit_scenes.yaml").read_text())


def copy_workflow(destination: Path, config: dict = TINY) -> Path:
    """The workflow's files in `destination` with a tiny config (default: the digits world's) as tiny.yaml."""
    return _copy_workflow(destination, config)


def run_snakemake(workdir, *args, check=True, env=None, timeout=600):
    """`snakemake --cores 2 *args` in `workdir`, offline; `env` adds variables. check: fail on an error exit."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@contextlib.contextmanager
def every_gpu_locked(lock_dir, devices=("0", "1")):
    """A fake multi-GPU host whose GPUs are all held by other jobs: the environment a job sees.

    The locks are held by this process (sda_core.devices' flock files) until the block ends, so a job
    that tries to claim a GPU waits for one.
    """
    from sda_core.devices import claim_gpu

    held = [claim_gpu(list(devices), Path(lock_dir), timeout=0)[1] for _ in devices]
    try:
        yield {"CUDA_VISIBLE_DEVICES": ",".join(devices), "SDA_GPU_LOCK_DIR": str(lock_dir)}
    finally:
        for fd in held:
            os.close(fd)


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE) if m[1] != "total"}
