"""The segmentation task through the real workflow: the tiny digit-scenes world, run by `snakemake`."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, TINY_SCENES, copy_workflow, run_snakemake

from sda_core.data.digit_scenes import GeneratedMaps
from sda_core.scoring.miou import COMPARISONS, METHODS
from sda_core.scoring.sanity import SANITY_CHECKS
from sda_core.store import StoreSequence


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("scenes"), TINY_SCENES)
    run_snakemake(workdir, "--configfile", "tiny.yaml")
    return workdir


def test_the_tiny_scenes_world_runs_to_mIoU_tables_with_intervals(scenes_run):
    tables = scenes_run / "results/tables"
    table = pd.read_csv(tables / "digit_scenes_c.csv")
    test, validation = TINY_SCENES["corruptions"]["test"], TINY_SCENES["corruptions"]["validation"]
    assert set(table.method) == set(METHODS)
    assert set(table[table.split == "test"].corruption) == {*test, "mean"}
    assert set(table[table.split == "validation"].corruption) == {*validation, "mean"}
    assert (table.ci_low <= table.miou + 1e-9).all() and (table.miou <= table.ci_high + 1e-9).all()
    assert (table[table.split == "test"].n == TINY_SCENES["digit_scenes"]["test_scenes"]).all()
    assert (table[table.split == "validation"].n == TINY_SCENES["digit_scenes"]["validation_images"]).all()
    paired = pd.read_csv(tables / "digit_scenes_c_paired.csv")
    assert {f"{a} - {b}" for a, b in COMPARISONS} == set(paired.comparison)
    sanity = pd.read_csv(tables / "digit_scenes_sanity.csv")
    assert list(sanity.check) == [check for check, _, _ in SANITY_CHECKS] and "miou" in sanity
    assert (scenes_run / "results/plots/digit_scenes_c.png").stat().st_size > 0
    assert (scenes_run / "results/plots/digit_scenes_preview.png").stat().st_size > 0


def test_label_maps_travel_with_the_images_through_every_stage(scenes_run):
    results = scenes_run / "results"
    clean = StoreSequence([results / "data/digit_scenes/test.zarr"])
    assert clean.label_shape == (8, 8)
    fog = StoreSequence([results / "target/fog.zarr"])
    np.testing.assert_array_equal(fog.labels(), clean.labels())
    dda = StoreSequence(sorted((results / "adapted/dda/fog").glob("shard-*.zarr")))
    np.testing.assert_array_equal(dda.labels(), clean.labels())
    generated = StoreSequence(sorted((results / "synthetic/generated").glob("shard-*.zarr")))
    scenes = TINY_SCENES["digit_scenes"]
    maps = GeneratedMaps(scenes["resolution"], 0.3, 0, scenes["generated_scenes"])
    np.testing.assert_array_equal(generated.labels(), maps.maps(0, scenes["generated_scenes"]))
    mod = StoreSequence(sorted((results / "synthetic/mod").glob("shard-*.zarr")))
    np.testing.assert_array_equal(mod.labels(), generated.labels())
    again = run_snakemake(scenes_run, "--configfile", "tiny.yaml", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_more_test_scenes_remake_the_test_side_only(scenes_run):
    """The source scenes do not depend on the test scenes' count: the denoisers, the source segmenter and
    the synthetic set stay (the change used to rerun all 24 jobs)."""
    from workflow_helpers import job_counts

    config = {**TINY_SCENES, "digit_scenes": {**TINY_SCENES["digit_scenes"], "test_scenes": 7}}
    (scenes_run / "more.yaml").write_text(yaml.safe_dump(config))
    counts = job_counts(run_snakemake(scenes_run, "--configfile", "more.yaml", "-n").stdout)
    assert counts["prepare_digit_scenes"] == 1
    assert not {"train_denoiser", "train_source_classifier", "sample_synthetic", "mod", "finetune"} & set(counts)
    assert counts["corrupt"] == 1 and counts["score"] == 1  # the target sets (one grouped job) and what scores them


def test_a_segmentation_config_mistake_is_refused_before_any_job(tmp_path):
    config = {**TINY_SCENES, "task": "classification", "memo": {"enabled": True}}
    workdir = copy_workflow(tmp_path, config)
    result = run_snakemake(workdir, "--configfile", "tiny.yaml", "-n", check=False)
    assert result.returncode != 0
    assert "task: world digit_scenes poses segmentation, not classification" in result.stdout + result.stderr
    assert not (workdir / "results").exists()
    config = {**TINY_SCENES, "memo": {"enabled": True}}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "--configfile", "tiny.yaml", "-n", check=False)
    assert result.returncode != 0
    assert "memo.enabled: not available for task segmentation yet" in result.stdout + result.stderr


def test_a_folder_holding_another_worlds_run_is_refused_before_any_job(tmp_path):
    """The worlds' outputs share names (models/unconditional.safetensors, adapted/...): a digit-scenes run
    in a digits run's folder would overwrite that run's models."""
    workdir = copy_workflow(tmp_path, TINY_SCENES)
    denoiser = workdir / "results/models/unconditional.safetensors"
    (workdir / "results/data/digits").mkdir(parents=True)
    denoiser.parent.mkdir(parents=True)
    denoiser.write_bytes(b"the digits run's denoiser")
    result = run_snakemake(workdir, "--configfile", "tiny.yaml", check=False)
    assert result.returncode != 0
    assert "results/ holds a run of world digits, whose outputs share paths with a digit_scenes run" in result.stderr
    assert denoiser.read_bytes() == b"the digits run's denoiser"
    assert sorted(p.name for p in (workdir / "results").iterdir()) == ["data", "models"]


def test_tune_adaptation_tries_settings_on_the_validation_corruptions_only(scenes_run, tmp_path):
    """tools/tune_adaptation.py: candidates scored on the validation sets and the clean scenes, never a
    test corruption; at the run's own setting it reproduces the run's own sanity figure."""
    adaptation = TINY_SCENES["adaptation"]
    output = tmp_path / "tuning.csv"
    command = [sys.executable, str(ROOT / "tools/tune_adaptation.py"), "--configfile", "tiny.yaml"]
    command += ["--run", "results", "--steps", "1", str(adaptation["steps"]), "--output", str(output)]
    command += ["--scales", str(adaptation["guidance"]["scale"])]
    subprocess.run(command, cwd=scenes_run, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    table = pd.read_csv(output)
    assert set(table.images) == {*TINY_SCENES["corruptions"]["validation"], "clean"}
    assert set(table.steps) == {1, adaptation["steps"]}
    assert set(table.method) == {"Source", "DDA", "DDA (adapted only)"}
    sanity = pd.read_csv(scenes_run / "results/tables/digit_scenes_sanity.csv").set_index("check").miou
    clean = table[(table.images == "clean") & (table.steps == adaptation["steps"])].set_index("method").score
    assert clean["Source"] == pytest.approx(sanity["source on clean test"], abs=0.01)
    assert clean["DDA (adapted only)"] == pytest.approx(sanity["source on clean after DDA"], abs=0.01)
    miou = pd.read_csv(scenes_run / "results/tables/digit_scenes_c.csv")
    validation = miou[(miou.split == "validation") & (miou.corruption != "mean")].set_index(["method", "corruption"])
    ours = table[table.steps == adaptation["steps"]].set_index(["method", "images"]).score
    for corruption in TINY_SCENES["corruptions"]["validation"]:
        assert ours["DDA", corruption] == pytest.approx(validation.miou["DDA", corruption], abs=0.01)
