"""The tiny digits configuration and how tests run the real workflow on it, in a temporary copy."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_PARTS = [
    "Snakefile",
    "rules",
    "workflow_scripts",
    "schemas",
    "report",
    "config.yaml",
    "presets",
    "environment.yml",
    "profiles",
]

# The tiny digits configuration, runnable by hand: snakemake --cores 2 --configfile tests/config/tiny_digits.yaml
TINY = yaml.safe_load((ROOT / "tests/config/tiny_digits.yaml").read_text())
# The tiny digit-scenes world (task segmentation): snakemake --cores 2 --configfile tests/config/tiny_digit_scenes.yaml
TINY_SCENES = yaml.safe_load((ROOT / "tests/config/tiny_digit_scenes.yaml").read_text())


def copy_workflow(destination: Path, config: dict = TINY) -> Path:
    """The workflow's files (not its results) in `destination`, with a tiny config (default: the digits
    world's) as tiny.yaml."""
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, destination / part)
    (destination / "tiny.yaml").write_text(yaml.safe_dump(config))
    return destination


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


HUB_IDS = [  # the timm weights of config.yaml's five classifiers
    "timm/resnet50.tv_in1k",
    "timm/swin_tiny_patch4_window7_224.ms_in1k",
    "timm/convnext_tiny.fb_in1k",
    "timm/swin_base_patch4_window7_224.ms_in1k",
    "timm/convnext_base.fb_in1k",
]


def placeholder_hub_cache(root: Path) -> Path:
    """A Hugging Face cache holding (empty) timm weights files for the five default classifiers."""
    for hub_id in HUB_IDS:
        repo = root / f"models--{hub_id.replace('/', '--')}"
        (repo / "snapshots" / "0").mkdir(parents=True)
        (repo / "snapshots" / "0" / "model.safetensors").touch()
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0")
    return root


def imagenet_placeholders(workdir: Path, configfile: str = "config.yaml") -> Path:
    """Every input an ImageNet config names, as an empty file or folder under `workdir` (enough for a dry
    run or `--lint`), and a Hugging Face cache with empty timm weights; returns the cache (HF_HUB_CACHE)."""
    from snakemake.utils import validate

    from sda_core.sources import imagenet_requirements

    config = yaml.safe_load((workdir / configfile).read_text())
    validate(config, str(workdir / "schemas" / "config.schema.yaml"), set_default=True)
    for requirement in imagenet_requirements(config, {a["name"]: "hub" for a in config["architectures"]}):
        path = workdir / requirement.path
        if path.suffix in (".pt", ".pth", ".safetensors", ".txt"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif requirement.path != "hub":
            path.mkdir(parents=True, exist_ok=True)
    return placeholder_hub_cache(workdir / "hub")


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE) if m[1] != "total"}
