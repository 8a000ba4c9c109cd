"""Model kinds (sda_core.models.kinds): a vlm entry's config mistakes refused at parse time, naming the
key and the reason, and what a kind makes and is scored by."""

import copy

import pandas as pd
import pytest
from snakemake.utils import validate
from workflow_helpers import ROOT, TINY, TINY_LLAVA

from sda_core.config_checks import config_problems
from sda_core.image_sets import CLEAN, FINETUNED, LORA_ON_SOURCE, SOURCE, adapted, swept, target
from sda_core.methods import PER_IMAGE_STAGES, not_run, run_methods
from sda_core.models.kinds import KINDS, kind_of


def with_llava(mutate=lambda c: None):
    config = copy.deepcopy(TINY)
    config["architectures"].append(copy.deepcopy(TINY_LLAVA))
    mutate(config)
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    return config


def problems(mutate=lambda c: None):
    return config_problems(with_llava(mutate), 10)


def llava(config):
    return config["architectures"][-1]


def test_a_tiny_llava_beside_a_classifier_has_no_problems_and_skips_the_classifier_only_stages():
    config = with_llava()
    assert config_problems(config, 10) == []
    assert kind_of(llava(config)).name == "vlm" and kind_of(config["architectures"][0]).name == "timm"
    for stage in PER_IMAGE_STAGES.values():  # null architectures: every one whose kind can run it
        assert stage.architectures(config) == ["tiny_resnet"]


@pytest.mark.parametrize("stage, reason", [("gda", "GDA's guidance"), ("memo", "MEMO adapts"), ("tent", "TENT adapts")])
def test_a_vlm_named_for_a_method_it_cannot_run_is_refused_with_the_reason(stage, reason):
    found = problems(lambda c: c[stage].update(enabled=True, architectures=["tiny_resnet", "tiny_llava"]))
    assert any(p.startswith(f"{stage}.architectures: tiny_llava is a vlm: {reason}") for p in found), found


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda c: llava(c).update(timm_name="resnet10t"), "architectures: tiny_llava: timm_name is for kind timm"),
        (
            lambda c: llava(c)["vlm"].update(questions=["colour"]),
            "unknown question 'colour'; valid for world digits: digit, parity",
        ),
        (lambda c: llava(c)["vlm"].update(questions=["digit", "digit"]), "question 'digit' is listed twice"),
        (
            lambda c: llava(c)["vlm"].update(questions=["parity", "digit"]),
            "the first question (parity) is the table question: its answers must be the 10 classes",
        ),
        (
            lambda c: llava(c)["vlm"].update(weights="llava-1.5-7b-hf"),
            "vlm.weights: the digits world trains its tiny LLaVA here",
        ),
        (lambda c: llava(c).pop("vlm"), "architectures: tiny_llava: kind vlm needs a vlm section"),
        (lambda c: c["architectures"][0].pop("timm_name"), "architectures: tiny_resnet: kind timm needs timm_name"),
        (lambda c: c["architectures"][0].update(vlm={}), "architectures: tiny_resnet: vlm settings are for kind vlm"),
        (lambda c: llava(c)["finetune"].update(label_smoothing=0.1), "finetune.label_smoothing: a vlm's answer-token"),
        (
            lambda c: llava(c).update(timm_kwargs={"depths": [1]}),
            "architectures: tiny_llava: timm_kwargs is for kind timm",
        ),
        (
            lambda c: c.update(architectures=[llava(c)]),
            "studies.timesteps: the timestep study scores the classifiers (kind timm) and this run has none",
        ),
    ],
)
def test_a_vlm_config_mistake_is_refused_naming_the_key(mutate, needle):
    found = problems(mutate)
    assert any(needle in p for p in found), found


def test_a_misspelled_tiny_size_is_refused_by_the_schema():
    with pytest.raises(Exception, match="num_hidden_layer"):
        with_llava(lambda c: llava(c)["vlm"]["tiny"]["text"].update(num_hidden_layer=4))
    filled = llava(with_llava())["vlm"]["tiny"]  # a partial override keeps the other defaults
    assert filled["vision"]["dropout"] == 0.1 and filled["text"]["num_hidden_layers"] == 1


def test_gda_aligned_with_gda_for_the_classifiers_only_is_accepted_beside_a_vlm():
    def gda_for_the_classifier(config):
        config["gda"].update(architectures=["tiny_resnet"])
        config["studies"]["gda_aligned"].update(enabled=True)

    assert problems(gda_for_the_classifier) == []


def test_the_vlm_makes_f_prime_and_its_control_and_scores_them_where_they_apply():
    vlm = KINDS["vlm"]
    run_models = [FINETUNED, "finetuned-generated", "finetuned-t111"]
    assert vlm.finetuned_models(run_models) == [FINETUNED, LORA_ON_SOURCE]
    assert KINDS["timm"].finetuned_models(run_models) == run_models
    models = [SOURCE, FINETUNED, "finetuned-generated"]
    assert vlm.scoring_models(target("fog"), models) == [SOURCE, FINETUNED, LORA_ON_SOURCE]
    assert vlm.scoring_models(adapted("dda", "fog"), models) == [SOURCE, FINETUNED, LORA_ON_SOURCE]
    assert vlm.scoring_models(adapted("diffpure", "fog"), models) == [SOURCE]
    assert vlm.scoring_models(CLEAN, models) == [SOURCE, FINETUNED]
    assert vlm.scoring_models(adapted(swept("dda", 111), CLEAN), models) == []  # the classifiers' study


def test_methods_reading_a_model_an_architecture_lacks_are_not_run_for_it():
    methods, _ = run_methods({"SDA (f_c')": "finetuned-generated"}, fusions=False, studies=["lora_on_source"])
    models = {"resnet": [SOURCE, FINETUNED, "finetuned-generated"], "llava": [SOURCE, FINETUNED, LORA_ON_SOURCE]}
    missing = not_run(list(models), {"memo": ["resnet"]}, models, methods)
    assert {"SDA (f_c')", "MEMO"} <= missing["llava"] and not missing["llava"] & {"SDA", "DDA", "LoRA on source"}
    assert {"LoRA on source", "LoRA on source (target only)"} <= missing["resnet"] and "SDA (f_c')" not in missing[
        "resnet"
    ]


def test_a_vlm_below_the_gate_on_its_other_question_fails_the_run(tmp_path):
    from sda_core.jobs.gates import GateError, gates_job
    from sda_core.scoring.sanity import SOURCE_CLEAN, question_check

    rows = [
        {"arch": "tiny_llava", "check": SOURCE_CLEAN, "n": 540, "top1": 97.0},
        {"arch": "tiny_llava", "check": question_check(SOURCE_CLEAN, "parity"), "n": 540, "top1": 60.0},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "sanity.csv", index=False)
    gates = {"source_clean_accuracy": 95, "generator_label_agreement": None, "action": "fail"}
    with pytest.raises(
        GateError, match=r"tiny_llava measured 60.00% < 95% \(540 images; source on clean test \(question parity\)\)"
    ):
        gates_job(str(tmp_path / "sanity.csv"), str(tmp_path / "gates.csv"), gates)
    gates_job(str(tmp_path / "sanity.csv"), str(tmp_path / "gates.csv"), {**gates, "action": "warn"})
    assert list(pd.read_csv(tmp_path / "gates.csv").result) == ["pass", "warn"]
