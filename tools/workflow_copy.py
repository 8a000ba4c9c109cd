"""A copy of the workflow in a folder of its own, with a config, and placeholders of an ImageNet
config's inputs: how the tools (tools/fault_injection.py, tools/lint_workflow.py) and the tests
(tests/workflow_helpers.py) run the real workflow away from the checkout."""

import shutil
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


def copy_workflow(destination: Path, config: dict | None = None) -> Path:
    """The workflow's files (not its results) in `destination`, with `config` (if any) as tiny.yaml."""
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, destination / part)
    if config is not None:
        (destination / "tiny.yaml").write_text(yaml.safe_dump(config))
    return destination


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
        (repo / "snapshots" / "0").mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / "0" / "model.safetensors").touch()
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text("0")
    return root


def imagenet_placeholders(workdir: Path, configfile: str = "config.yaml") -> Path:
    """Every input an ImageNet config names, as an empty file or folder under `workdir` (enough for a dry
    run or `--lint`), and a Hugging Face cache with empty timm weights; returns the cache (HF_HUB_CACHE)."""
    from snakemake.utils import validate

    from sda_core.external_inputs import imagenet_requirements

    config = yaml.safe_load((workdir / configfile).read_text())
    validate(config, str(workdir / "schemas" / "config.schema.yaml"), set_default=True)
    for requirement in imagenet_requirements(
        config, {a["name"]: a["weights"] or "hub" for a in config["architectures"]}
    ):
        path = workdir / requirement.path
        if path.suffix in (".pt", ".pth", ".safetensors", ".txt"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif requirement.path != "hub":
            path.mkdir(parents=True, exist_ok=True)
    return placeholder_hub_cache(workdir / "hub")
