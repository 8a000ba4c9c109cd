"""The shipped ImageNet configuration through the `snakemake` command: missing inputs, and a dry run."""
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_PARTS = ["Snakefile", "rules", "workflow_scripts", "schemas", "report", "config.yaml", "presets"]
HUB_IDS = ["timm/resnet50.tv_in1k", "timm/swin_tiny_patch4_window7_224.ms_in1k", "timm/convnext_tiny.fb_in1k",
           "timm/swin_base_patch4_window7_224.ms_in1k", "timm/convnext_base.fb_in1k"]


def snakemake(workdir, *args, hub_cache):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache)}
    return subprocess.run([SNAKEMAKE, "--cores", "4", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)


def placeholder_hub_cache(root: Path) -> Path:
    """A Hugging Face cache holding (empty) timm weights files for the five default classifiers."""
    for hub_id in HUB_IDS:
        repo = root / f"models--{hub_id.replace('/', '--')}"
        (repo / "snapshots" / "0").mkdir(parents=True)
        (repo / "snapshots" / "0" / "model.safetensors").touch()
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0")
    return root


@pytest.fixture()
def workdir(tmp_path):
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / part)
    return tmp_path


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE) if m[1] != "total"}


def test_missing_inputs_are_listed_in_one_message_with_how_to_obtain_them(workdir):
    result = snakemake(workdir, "-n", hub_cache=workdir / "empty-cache")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "27 input(s) of the ImageNet experiment are missing" in message
    for expected in ("checkpoints/256x256_diffusion_uncond.pt", "openaipublic.blob.core.windows.net",
                     "checkpoints/DiT-XL-2-256x256.pt", "checkpoints/sd-vae-ft-ema",
                     "huggingface-cli download timm/convnext_base.fb_in1k",
                     "data/imagenet-c/jpeg_compression/5", "data/imagenet-c/saturate/5", "zenodo.org"):
        assert expected in message


@pytest.mark.parametrize("val_root", [None, "data/imagenet/val"])
def test_dry_run_of_the_full_imagenet_experiment_lists_the_expected_jobs(workdir, val_root):
    from sda_core.sources import imagenet_requirements

    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["imagenet"]["val_root"] = val_root
    (workdir / "full.yaml").write_text(yaml.safe_dump(config))
    hub_cache = placeholder_hub_cache(workdir / "hub")
    # the placeholder tree: every input the config names, as an empty file or folder
    config = yaml.safe_load(snakemake_validated(workdir, "full.yaml"))
    for requirement in imagenet_requirements(config, {a["name"]: "hub" for a in config["architectures"]}):
        path = workdir / requirement.path
        if path.suffix in (".pt", ".safetensors"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif requirement.path != "hub":
            path.mkdir(parents=True, exist_ok=True)

    result = snakemake(workdir, "-n", "--configfile", "full.yaml", hub_cache=hub_cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    clean = 1 if val_root else 0
    assert job_counts(result.stdout) == {
        "all": 1, "import_images": 19 + clean, "sample_synthetic": 8, "mod": 8, "finetune": 5,
        "adapt": (19 + 19 + 2 * clean) * 8, "predict": 5 * (19 + 1 + clean), "score": 1, "preview": 1}
    jobs = collections.Counter(re.findall(r"output: results/adapted/(\w+)/", result.stdout))
    assert jobs == {"dda": (19 + clean) * 8, "diffpure": 19 * 8, **({"unguided": 8} if clean else {})}


def snakemake_validated(workdir: Path, configfile: str) -> str:
    """The config with the schema's defaults filled in, as YAML."""
    from snakemake.utils import validate

    config = yaml.safe_load((workdir / configfile).read_text())
    validate(config, str(workdir / "schemas" / "config.schema.yaml"), set_default=True)
    return yaml.safe_dump(config)
