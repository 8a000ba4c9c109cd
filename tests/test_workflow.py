"""The real workflow through the `snakemake` command, on a tiny digits configuration."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
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


def run_snakemake(workdir, *args, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, workdir / part)
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return workdir


@pytest.fixture(scope="module")
def finished_run(workdir):
    run_snakemake(workdir, "--configfile", "tiny.yaml")
    return workdir


def test_tiny_digits_run_writes_the_tables_and_plot(finished_run):
    table = pd.read_csv(finished_run / "results/tables/digits_c.csv")
    assert set(table.method) == {"Source", "DiffPure", "DDA", "SDA", "DDA (adapted only)", "SDA (adapted only)"}
    assert set(table.corruption) == {"gaussian_noise", "fog", "saturate", "mean"}
    test_rows = table[(table.split == "test") & (table.corruption != "mean")]
    assert (test_rows.n == 180).all() and (table[table.corruption == "saturate"].n == 20).all()
    assert table.top1.between(0, 100).all() and (table.ci_low <= table.top1).all()
    assert (table.top1 <= table.ci_high).all()
    sanity = pd.read_csv(finished_run / "results/tables/digits_sanity.csv")
    assert len(sanity) == 8 and sanity.check.str.contains("misalignment").any()
    assert sanity.set_index("check").loc["source agrees with generator label", "n"] == 20
    assert (finished_run / "results/plots/digits_c.png").stat().st_size > 10_000
    assert (finished_run / "results/plots/digits_preview.png").stat().st_size > 5_000
    paired = pd.read_csv(finished_run / "results/tables/digits_c_paired.csv")
    assert set(paired.comparison) == {"SDA - DDA", "DDA - Source", "SDA - Source", "DiffPure - Source"}
    assert (paired.ci_low <= paired.difference).all() and (paired.difference <= paired.ci_high).all()
    assert (finished_run / "results/benchmarks/mod/0.tsv").exists()
    assert "shard 1/2" in (finished_run / "results/logs/sample_synthetic/1.log").read_text()


def test_second_run_has_nothing_to_do(finished_run):
    result = run_snakemake(finished_run, "--configfile", "tiny.yaml")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_html_report(finished_run):
    run_snakemake(finished_run, "--configfile", "tiny.yaml", "--report", "report.html")
    assert "digits_c.csv" in (finished_run / "report.html").read_text(errors="ignore")


def test_config_typo_fails_before_any_job(workdir, tmp_path):
    bad = dict(TINY, adaptation={**TINY["adaptation"], "sclae": 2})
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = run_snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0 and "sclae" in result.stdout + result.stderr


def test_paper_config_validates_then_says_what_is_missing(workdir):
    result = run_snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "world: imagenet validates but cannot run yet" in result.stdout + result.stderr


def test_killed_run_resumes_from_finished_chunks(tmp_path):
    """SIGKILL the whole snakemake process group mid-adaptation; the rerun keeps the finished chunks."""
    import signal
    import time

    import zarr

    for part in WORKFLOW_PARTS:
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / part)
    slow = dict(TINY, adaptation={**TINY["adaptation"], "batch_size": 2, "shards": 1})
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    target = "results/adapted/dda/fog/shard-0.zarr"
    partial = tmp_path / f"{target}.partial"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([SNAKEMAKE, target, "--cores", "1", "--configfile", "slow.yaml"], cwd=tmp_path,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and process.poll() is None:
        if (partial / "done" / "zarr.json").exists():
            done = int(zarr.open_group(str(partial), mode="r")["done"][:].sum())
            if done >= 3:
                break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert done >= 3, "the adaptation job did not get far enough to be killed mid-way"
    assert not (tmp_path / target).exists()
    run_snakemake(tmp_path, "--unlock", "--configfile", "slow.yaml")
    run_snakemake(tmp_path, target, "--configfile", "slow.yaml")
    log = (tmp_path / "results/logs/adapt/dda/fog/0.log").read_text()
    resumed = [line for line in log.splitlines() if "resuming" in line]
    assert resumed and int(resumed[-1].split(": ")[-1].split(" of ")[0]) >= 3
    assert (tmp_path / target / "zarr.json").exists()
