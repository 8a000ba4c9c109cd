"""The vlm path through the real workflow (snakemake on the tiny digits world with a tiny LLaVA beside
the tiny classifier): the LLaVA's source training, LoRA f' on the MoD set and its LoRA-on-source control,
closed-set predictions per question, its rows in the tables and claims, and the stages a vlm cannot run
left out for it alone."""

import copy
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors import safe_open
from workflow_helpers import TINY, TINY_LLAVA, copy_workflow, run_snakemake

from sda_core.image_sets import CLEAN, question_key, question_labels_key

CONFIG = copy.deepcopy(TINY)
CONFIG["architectures"].append(copy.deepcopy(TINY_LLAVA))
# the classifier's studies and GDA/TENT are tested with the tiny run; MEMO and f_c' stay, so that the
# tables show a method and a study variant made for the classifier only
CONFIG["studies"] = {"timesteps": {"enabled": False}, "set_size": {"enabled": False}}
CONFIG["gda"]["enabled"] = CONFIG["tent"]["enabled"] = False
CONFIG["targets"] = []
CONFIG["predict"] = {"jobs": "per_architecture"}
ADAPTERS = ["results/models/finetuned/tiny_llava.safetensors", "results/models/finetuned-source/tiny_llava.safetensors"]


@pytest.fixture(scope="module")
def vlm_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("vlm"), CONFIG)
    run_snakemake(workdir, "--configfile", "tiny.yaml")
    return workdir


def table(workdir, name):
    return pd.read_csv(workdir / f"results/tables/digits_{name}.csv")


def test_the_llava_has_its_rows_and_the_classifier_only_methods_are_left_out_for_it(vlm_run):
    methods = table(vlm_run, "c").groupby("arch").method.unique()
    llava, resnet = set(methods["tiny_llava"]), set(methods["tiny_resnet"])
    assert {"Source", "DiffPure", "DDA", "SDA", "LoRA on source", "LoRA on source (target only)"} <= llava
    assert not llava & {"MEMO", "SDA (f_c')"}
    assert {"MEMO", "SDA (f_c')"} <= resnet and not resnet & {"LoRA on source", "LoRA on source (target only)"}
    paired = table(vlm_run, "c_paired")
    assert {"SDA - LoRA on source", "SDA - DDA"} <= set(paired[paired.arch == "tiny_llava"].comparison)
    claims = table(vlm_run, "claims")
    assert set(claims[claims.claim == "sda_beats_lora_on_source"].arch) == {"tiny_llava"}
    sanity = table(vlm_run, "sanity").set_index(["arch", "check"])
    assert sanity.loc[("tiny_llava", "source on clean test (question parity)"), "n"] == 180
    assert ("tiny_resnet", "source on clean test (question parity)") not in sanity.index


def test_the_llava_answers_every_question_with_a_probability_row_per_image(vlm_run):
    arrays = np.load(vlm_run / "results/predictions/tiny_llava/all.npz")
    digit, parity = arrays[f"source/{CLEAN}"], arrays[question_key("parity", "source", CLEAN)]
    assert digit.shape == (180, 10) and parity.shape == (180, 2)
    np.testing.assert_allclose(digit.astype(float).sum(1), 1, atol=1e-2)
    np.testing.assert_array_equal(arrays[question_labels_key("parity", CLEAN)], arrays[f"labels/{CLEAN}"] % 2)


def test_the_lora_files_hold_adapters_only_and_name_their_vocabulary(vlm_run):
    for adapter in ADAPTERS:
        with safe_open(str(vlm_run / adapter), framework="pt") as file:
            assert all("lora_" in key for key in file.keys())
            metadata = file.metadata()
        assert {"even", "odd"} <= set(json.loads(metadata["vocabulary"])) and json.loads(metadata["lora"])["r"] == 4
    source = (vlm_run / "results/models/source/tiny_llava.safetensors").stat().st_size
    assert all((vlm_run / adapter).stat().st_size < source / 2 for adapter in ADAPTERS)


def test_a_lost_lora_fine_tuning_reruns_to_identical_bytes(vlm_run):
    before = {path: hashlib.sha256((vlm_run / path).read_bytes()).hexdigest() for path in ADAPTERS}
    for path in ADAPTERS:
        (vlm_run / path).unlink()
    run_snakemake(vlm_run, *ADAPTERS, "--configfile", "tiny.yaml")  # targets first: --configfile takes several
    assert {path: hashlib.sha256((vlm_run / path).read_bytes()).hexdigest() for path in ADAPTERS} == before


def test_the_predictions_do_not_depend_on_the_batch_size(vlm_run, tmp_path):
    predictions = vlm_run / "results/predictions/tiny_llava/all.npz"
    before, written = dict(np.load(predictions)), predictions.stat().st_mtime_ns
    trained = {path: (vlm_run / path).stat().st_mtime_ns for path in ADAPTERS}
    config = copy.deepcopy(CONFIG)
    config["architectures"][-1]["vlm"]["batch_size"] = 7  # a partial last batch as well
    # written as copy_workflow writes tiny.yaml (sorted keys): Snakemake compares params with their order
    (vlm_run / "batch7.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(vlm_run, "--configfile", "batch7.yaml")  # the whole run: what else would rerun
    assert predictions.stat().st_mtime_ns != written  # rerun: the batch size is a param of the job
    assert {path: (vlm_run / path).stat().st_mtime_ns for path in ADAPTERS} == trained  # and of no training
    after = np.load(predictions)
    assert set(after) == set(before)
    for key, values in before.items():
        np.testing.assert_allclose(after[key].astype(float), values.astype(float), atol=2e-3, err_msg=key)
