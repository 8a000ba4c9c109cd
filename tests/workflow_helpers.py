"""The tiny digits configuration and how tests run the real workflow on it, in a temporary copy."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_PARTS = ["Snakefile", "rules", "workflow_scripts", "schemas", "report", "config.yaml", "presets"]

TINY = {
    "world": "digits", "device": "cpu", "threads": 1,
    "digits": {"resolution": 8, "test_fraction": 0.1, "validation_images": 20},
    "corruptions": {"severity": 3, "test": ["gaussian_noise", "fog"], "validation": ["saturate"]},
    "classifier_input": {"resize": 8, "crop": 8},
    "architectures": [{"name": "tiny_resnet", "timm_name": "resnet10t",
                       "source_training": {"optimizer": "adamw", "lr": 3e-3, "batch_size": 64, "epochs": 2,
                                           "schedule": "constant"},
                       "finetune": {"optimizer": "sgd", "lr": 1e-3, "batch_size": 16, "epochs": 1,
                                    "schedule": "constant"}}],
    "denoisers": {
        "unconditional": {"spec": {"arch": "adm", "image_size": 8, "in_channels": 3, "model_channels": 8,
                                   "out_channels": 6, "num_res_blocks": 1, "attention_resolutions": "4",
                                   "channel_mult": [1, 2], "num_head_channels": 8, "use_scale_shift_norm": True,
                                   "norm_groups": 4},
                          "training": {"steps": 3, "batch_size": 8}},
        "generator": {"spec": {"arch": "dit", "sample_size": 8, "patch_size": 4, "in_channels": 3,
                               "out_channels": 6, "num_layers": 1, "num_attention_heads": 2,
                               "attention_head_dim": 8, "num_embeds_ada_norm": 10},
                      "training": {"steps": 3, "batch_size": 8}},
    },
    "sampling": {"images_per_class": 2, "respacing": 4, "batch_size": 8, "shards": 2},
    "adaptation": {"respacing": 10, "steps": 3, "guidance": {"scale": 1.0, "downsample": 2, "norm": "sample"},
                   "batch_size": 32, "shards": 2, "mod_shards": 1},
    "diffpure": {"respacing": 10, "t": 150},
}


def copy_workflow(destination: Path) -> Path:
    """The workflow's files (not its results) in `destination`, with the tiny config as tiny.yaml."""
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, destination / part)
    (destination / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return destination


def run_snakemake(workdir, *args, check=True, env=None):
    """`snakemake --cores 2 *args` in `workdir`, offline; `env` adds variables. check: fail on an error exit."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result
