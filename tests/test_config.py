"""The schema: both shipped configurations validate; typos and bad values are rejected by name."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "schemas" / "config.schema.yaml")


# DDA's low-pass guidance as the reference runs it: every step, through the UNet
REFERENCE_GUIDANCE = {"scale": 6.0, "downsample": 4, "norm": "batch", "every": 1, "jacobian": "full"}


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def test_paper_config_validates_with_reference_defaults():
    config = load("config.yaml")
    validate(config, SCHEMA, set_default=True)
    assert config["adaptation"]["guidance"] == REFERENCE_GUIDANCE
    assert config["adaptation"]["respacing"] == 100 and config["adaptation"]["steps"] == 50
    assert config["sampling"]["respacing"] == 250 and config["corruptions"]["severity"] == 5
    assert len(config["corruptions"]["test"]) == 15 and len(config["architectures"]) == 5
    assert config["architectures"][1]["finetune"]["stop_epoch"] == 15


def test_schema_defaults_are_the_reference_settings():
    config = {
        "world": "imagenet",
        "architectures": [{"name": "r", "timm_name": "resnet50"}],
        "denoisers": {"unconditional": {"spec": {"arch": "adm"}}, "generator": {"spec": {"arch": "dit"}}},
    }
    validate(config, SCHEMA, set_default=True)
    assert config["adaptation"]["guidance"] == REFERENCE_GUIDANCE
    assert config["adaptation"]["noise_index"] == "reference"
    assert config["diffpure"] == {"enabled": True, "respacing": 100, "t": 150}
    assert config["architectures"][0]["finetune"]["milestones"] == [10, 20, 25]


def test_schema_offers_exactly_the_storage_codecs_the_stores_implement():
    from sda_core.store import STORAGE_CODECS

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    codec = schema["properties"]["storage"]["properties"]["codec"]
    assert codec["enum"] == list(STORAGE_CODECS) and codec["default"] == "zstd"


def test_digits_preset_validates_on_its_own():
    config = load("presets/digits.yaml")
    validate(config, SCHEMA, set_default=True)
    assert config["world"] == "digits"
    assert [a["name"] for a in config["architectures"]] == ["resnet10t", "convnext_atto", "tiny_llava"]
    assert [a["kind"] for a in config["architectures"]] == ["timm", "timm", "vlm"]


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda c: c["adaptation"].update(sclae=3), "sclae"),
        (lambda c: c["adaptation"]["guidance"].update(scale="six"), "six"),
        (lambda c: c["corruptions"].update(test=["gausian_noise"]), "gaussian_noise"),
        (lambda c: c["denoisers"]["unconditional"].update(spec="adm-512"), "adm-512"),
        (lambda c: c["architectures"][0].update(finetune={"optimizer": "adam"}), "adam"),
        (lambda c: c.update(world="cifar"), "cifar"),
    ],
)
def test_bad_values_are_rejected_with_the_offending_key(mutate, needle):
    config = copy.deepcopy(load("config.yaml"))
    mutate(config)
    with pytest.raises(WorkflowError) as error:
        validate(config, SCHEMA, set_default=True)
    assert needle in str(error.value)


def test_environment_yml_installs_the_package_with_its_declared_dependencies_only():
    """pyproject.toml owns the dependency list; the conda environment installs the package from it
    instead of restating the list (which had to be kept in step by hand)."""
    dependencies = load("environment.yml")["dependencies"]
    pip_section = next(d["pip"] for d in dependencies if isinstance(d, dict))
    assert pip_section == ["-e .[test]"]
    assert {d for d in dependencies if isinstance(d, str)} == {"python=3.11", "pip"}


def test_facts_spelled_in_the_schema_agree_with_their_owner_in_sda_core():
    """The schema cannot import Python: the lists it repeats are checked here against their owner."""
    from sda_core.data.corruptions import ALL_CORRUPTIONS, TEST_CORRUPTIONS, VALIDATION_CORRUPTIONS
    from sda_core.models.specs import DENOISER_ARCHS, DENOISER_PRESETS

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    assert schema["definitions"]["corruption"]["enum"] == list(ALL_CORRUPTIONS)
    corruptions = schema["properties"]["corruptions"]["properties"]
    assert corruptions["test"]["default"] == list(TEST_CORRUPTIONS)
    assert corruptions["validation"]["default"] == list(VALIDATION_CORRUPTIONS)
    preset_name, with_overrides, full = schema["definitions"]["denoiser"]["properties"]["spec"]["oneOf"]
    assert preset_name["enum"] == with_overrides["properties"]["preset"]["enum"] == list(DENOISER_PRESETS)
    assert full["properties"]["arch"]["enum"] == list(DENOISER_ARCHS)
    # GDA's defaults are its public code's, owned by sda_core.gda.GdaSettings
    from sda_core.gda import OBJECTIVES, GdaSettings

    gda = schema["properties"]["gda"]["properties"]
    assert gda["objective"]["enum"] == list(OBJECTIVES)
    defaults = GdaSettings()
    for key in ("respacing", "steps", "objective", "views", "entropy_weight", "pixel_weight", "vgg_weight"):
        assert gda[key]["default"] == getattr(defaults, key), key
    assert gda["clip_weight"]["default"] == defaults.clip_weight
    # the speed options, owned by sda_core.precision, .compilation, .diffusion.guidance and .batching
    from sda_core.batching import AUTO
    from sda_core.compilation import COMPILE_MODES
    from sda_core.diffusion.guidance import JACOBIANS, LowPassGuidance
    from sda_core.precision import PRECISIONS

    assert schema["properties"]["precision"]["enum"] == list(PRECISIONS)
    assert schema["properties"]["compile"]["enum"] == list(COMPILE_MODES)
    adaptation = schema["properties"]["adaptation"]["properties"]
    guidance = adaptation["guidance"]["properties"]
    assert guidance["jacobian"]["enum"] == list(JACOBIANS)
    for key in ("scale", "downsample", "norm", "every", "jacobian"):
        assert guidance[key]["default"] == getattr(LowPassGuidance(), key), key
    assert {"const": AUTO} in adaptation["batch_size"]["anyOf"]
    assert gda["clip"]["properties"]["cutouts"]["default"] == defaults.clip_cutouts
    assert gda["clip"]["properties"]["prompt"]["default"] == defaults.clip_prompt


def test_paper_config_names_the_official_presets_and_they_resolve_to_the_official_models():
    from sda_core.models.specs import resolve_spec

    denoisers = load("config.yaml")["denoisers"]
    assert (denoisers["unconditional"]["spec"], denoisers["generator"]["spec"]) == ("adm-256-uncond", "dit-xl-2-256")
    adm = resolve_spec("adm-256-uncond")
    assert (adm["model_channels"], adm["channel_mult"], adm["attention_resolutions"]) == (
        256,
        [1, 1, 2, 2, 4, 4],
        "32,16,8",
    )
    assert resolve_spec({"preset": "dit-xl-2-256", "num_layers": 2}) == {
        **resolve_spec("dit-xl-2-256"),
        "num_layers": 2,
    }
    with pytest.raises(ValueError, match="adm-256-uncond, dit-xl-2-256"):
        resolve_spec("adm-512")


def test_the_lock_pins_every_dependency_exactly():
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    for requirement in wanted:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement)[0]).lower()
        assert name in pinned, f"{name} is not in requirements.lock (make lock)"


@pytest.mark.parametrize("experiment", ["config.yaml", "presets/digits.yaml"])
def test_the_fast_preset_merges_over_a_whole_experiment(experiment):
    """As Snakemake merges `--configfile A B` (snakemake.utils.update_config): only the guidance's Jacobian
    changes, and the merged config has no problem."""
    from snakemake.utils import update_config

    from sda_core.config_checks import config_problems

    config = load(experiment)
    update_config(config, load("presets/fast.yaml"))
    validate(config, SCHEMA, set_default=True)
    plain = load(experiment)
    validate(plain, SCHEMA, set_default=True)
    assert config["adaptation"]["guidance"] == {**plain["adaptation"]["guidance"], "jacobian": "diagonal"}
    assert {k: v for k, v in config.items() if k != "adaptation"} == {
        k: v for k, v in plain.items() if k != "adaptation"
    }
    assert config_problems(config, 1000 if experiment == "config.yaml" else 10) == []


def test_a_rule_lets_its_jobs_use_the_gpu_exactly_when_it_asks_for_one():
    """A rule's `device` param (the job's device) and its `gpu` resource (what the scheduler reserves) are
    spelled apart: a job on a GPU the scheduler did not reserve would share it, a CPU job holding a GPU
    slot would starve the others. Every rule block of rules/ names both or neither."""
    import re

    for path in sorted((ROOT / "rules").glob("*.smk")):
        blocks = re.split(r"^\s*rule\b", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            name = block.split(":")[0].strip() or "(a rule made in a loop)"
            uses_gpu = "job_device(uses_gpu=True)" in block
            reserves_gpu = "gpu=GPUS_PER_JOB" in block
            assert uses_gpu == reserves_gpu, f"{path.name}: rule {name}: device and gpu resource disagree"
            assert uses_gpu or "job_device(uses_gpu=False)" in block, f"{path.name}: rule {name} names no device"


def test_schema_offers_exactly_the_weight_layouts_and_preprocessings_the_loader_implements():
    from sda_core.models.classifiers import PREPROCESSING, WEIGHTS_FORMATS

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    architecture = schema["properties"]["architectures"]["items"]["properties"]
    assert architecture["weights_format"]["enum"] == list(WEIGHTS_FORMATS)
    preprocess = schema["properties"]["classifier_input"]["properties"]["preprocess"]
    assert preprocess["enum"] == list(PREPROCESSING) and preprocess["default"] == PREPROCESSING[0]


def test_the_papers_figures_in_the_docs_are_the_ones_the_paper_table_tool_prints():
    import re

    from sda_core.paper import IMAGENET_C, METHODS

    names = {"ResNet-50": "resnet50", "Swin-T": "swin_t", "ConvNeXt-T": "convnext_t", "Swin-B": "swin_b"}
    names["ConvNeXt-B"] = "convnext_b"
    text = (Path(SCHEMA).parents[1] / "docs/running-at-scale.md").read_text().split("| ImageNet-W |")[0]
    rows = re.findall(r"^\| (\S+) \| paper \| (.+) \|$", text, flags=re.M)
    documented = {names[model]: cells.split(" | ") for model, cells in rows if model in names}
    assert documented.keys() == IMAGENET_C.keys()
    for arch, cells in documented.items():
        assert [None if cell == "-" else float(cell) for cell in cells] == list(IMAGENET_C[arch]), arch
    assert len(METHODS) == len(next(iter(documented.values())))
