"""Configuration mistakes the schema cannot express, refused at parse time with every problem named."""

import copy
import inspect

import numpy as np
import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import ROOT, TINY, TINY_SCENES

from sda_core.config_checks import config_problems
from sda_core.models.specs import SPEC_ARGUMENTS


def checked(mutate):
    config = copy.deepcopy(TINY)
    mutate(config)
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    return config_problems(config, 10)


def test_the_tiny_and_shipped_configs_have_no_problems():
    assert checked(lambda c: None) == []
    digits = yaml.safe_load((ROOT / "presets/digits.yaml").read_text())
    validate(digits, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert config_problems(digits, 10) == []
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(paper, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert config_problems(paper, 1000) == []


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (
            lambda c: c["denoisers"]["unconditional"]["spec"].update(num_res_block=1),
            "denoisers.unconditional.spec: unknown adm argument(s) num_res_block; valid: image_size",
        ),
        (
            lambda c: c["denoisers"]["unconditional"]["spec"].pop("model_channels"),
            "missing adm argument(s) model_channels",
        ),
        (lambda c: c["adaptation"].update(steps=10), "adaptation.steps: 10 steps do not fit a respacing of 10"),
        (
            lambda c: c["adaptation"]["guidance"].update(downsample=16),
            "adaptation.guidance.downsample: 16 is larger than the unconditional model's images (8 px)",
        ),
        (
            lambda c: c["denoisers"]["generator"]["spec"].update(num_embeds_ada_norm=12),
            "denoisers.generator.spec: conditioned on 12 classes (num_embeds_ada_norm), the data has 10",
        ),
        (lambda c: c["corruptions"].update(validation=["saturate", "fog"]), "corruptions: fog in both test and"),
        (
            lambda c: c["denoisers"]["generator"].update(spec="dit-xl-2-256"),
            "denoisers.generator.spec: conditioned on 1000 classes (num_embeds_ada_norm), the data has 10",
        ),
        (lambda c: c["architectures"].append(dict(c["architectures"][0])), "the name 'tiny_resnet' is used 2 times"),
        (
            lambda c: c["studies"]["set_size"].update(images_per_class=[1, 2]),
            "studies.set_size.images_per_class: 2 not below the 2 generated images per class",
        ),
        (
            lambda c: c["corruptions"].update(validation=[]),
            "studies.fusions: its tuned weight is chosen on the validation corruptions, and corruptions.validation",
        ),
        (lambda c: c["gda"].update(architectures=["resnet50"]), "gda.architectures: resnet50 not among"),
        (lambda c: c["gda"].update(enabled=True, architectures=[]), "gda.architectures: [] runs GDA for no"),
        (
            lambda c: (c["studies"].update(gda_aligned={"enabled": True}), c["gda"].update(enabled=False)),
            "studies.gda_aligned: f'_GDA learns from MoD made by GDA under each architecture's f, and scores "
            "GDA's images: it needs GDA for every architecture; GDA is off",
        ),
        (
            lambda c: (
                c["architectures"].append({**c["architectures"][0], "name": "other"}),
                c["gda"].update(architectures=["tiny_resnet"]),
            ),
            "gda.architectures leaves out other; or set studies.gda_aligned.enabled: false",
        ),
        (
            lambda c: c["architectures"][0].update(finetuned_weights="f.pth"),
            "architectures: tiny_resnet: finetuned_weights: world digits fine-tunes here",
        ),
        (lambda c: c["gda"].update(steps=51), "gda.steps: 51 steps do not fit a respacing of 50"),
        (lambda c: c["gda"].update(vgg_weight=100), "gda.vgg_weight: 100 with no gda.vgg weights file"),
        (lambda c: c["gda"].update(vgg_weight=100, vgg="vgg.pth"), "VGG-19's relu5_2 needs images of at least 32"),
        (lambda c: c["gda"].update(clip_weight=5000), "gda.clip_weight: 5000 with no gda.clip.weights file"),
        (lambda c: c["gda"].update(entropy_weight=0, pixel_weight=0), "gda: every loss weight is 0"),
        (lambda c: c.update(device="cpu", precision="bf16"), "precision: bf16 on the CPU is refused"),
        (lambda c: c.update(device="cpu", compile="cudagraphs"), "compile: cudagraphs needs a CUDA device"),
        (
            lambda c: c["adaptation"].update(batch_size="auto", guidance={"norm": "batch"}),
            "adaptation.batch_size: auto with guidance.norm: batch",
        ),
    ],
)
def test_each_mistake_is_named(mutate, needle):
    assert any(needle in problem for problem in checked(mutate)), checked(mutate)


def test_all_problems_are_reported_at_once():
    def many(c):
        c["adaptation"].update(steps=10)
        c["corruptions"].update(validation=["fog"])
        c["denoisers"]["generator"]["spec"].update(patch_sise=4)

    assert len(checked(many)) == 3


def test_spec_arguments_are_the_constructors_arguments():
    from diffusers import DiTTransformer2DModel

    from sda_core.models.adm import ADMUNet

    for arch, constructor in (("adm", ADMUNet.__init__), ("dit", DiTTransformer2DModel.__init__)):
        parameters = list(inspect.signature(constructor).parameters.values())[1:]
        required, optional = SPEC_ARGUMENTS[arch]
        assert [p.name for p in parameters] == [*required, *optional]
        assert [p.name for p in parameters if p.default is inspect.Parameter.empty] == list(required)


@pytest.mark.parametrize(
    "targets, needle",
    [
        ([{"name": "w", "shift": "watermark"}] * 2, "targets: the name 'w' is used 2 times"),
        ([{"name": "fog", "shift": "watermark"}], "targets: fog: the name is taken"),
        ([{"name": "c_paired", "shift": "watermark"}], "targets: c_paired: the name is taken"),
        ([{"name": "mean", "shift": "watermark"}], "targets: mean: the name is taken"),
        (
            [{"name": "w", "shift": "watermark"}, {"name": "w_paired", "shift": "watermark"}],
            "targets: w_paired: the name",
        ),
        ([{"name": "w"}], "targets: w: world digits makes a named target here; set its shift (watermark)"),
        ([{"name": "w", "shift": "watermark", "root": "data/w"}], "targets: w: world digits makes its targets here"),
    ],
)
def test_named_target_mistakes_are_refused(targets, needle):
    problems = checked(lambda c: c.update(targets=targets))
    assert any(needle in problem for problem in problems), problems


def test_an_imagenet_target_needs_its_folder():
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper["targets"] = [{"name": "w"}]
    validate(paper, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert config_problems(paper, 1000) == [
        "targets: w: world imagenet reads a named target from a folder; set its root (<root>/<wnid>/*)"
    ]


def test_a_subset_file_and_images_per_class_are_refused_together():
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper["imagenet"].update(subset_file="data/subset.txt", images_per_class=5)
    validate(paper, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert any("imagenet.subset_file and imagenet.images_per_class" in p for p in config_problems(paper, 1000))


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda c: c["imagenet"].update(skip_unreadable=True), "imagenet.skip_unreadable with pre-adapted sets"),
        (
            lambda c: c["architectures"][1]["memo"].update(momentum=0.9),
            "architectures: swin_t: memo.momentum applies to sgd, not adamw",
        ),
        (lambda c: c["targets"][0].update(shift="watermark"), "targets: w: shift makes a digits target"),
    ],
)
def test_imagenet_config_mistakes_of_memo_and_pre_adapted_sets_are_refused(mutate, needle):
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper["imagenet"]["adapted_root"] = "data/dda-imagenet-c"
    mutate(paper)
    validate(paper, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert any(needle in problem for problem in config_problems(paper, 1000)), config_problems(paper, 1000)


def test_imagenet_only_keys_are_refused_on_digits():
    problems = checked(lambda c: c.update(imagenet={"adapted_root": "data/x", "subset_file": "data/y.txt"}))
    assert sum("world digits makes its target sets here" in p for p in problems) == 2


def test_a_results_folder_of_another_world_is_refused_and_one_of_the_same_world_is_not(tmp_path):
    from sda_core.worlds import other_world_in

    results = tmp_path / "results"
    assert other_world_in(str(results), "digits") is None  # nothing there yet
    (results / "seed-1/data/digits").mkdir(parents=True)
    assert other_world_in(str(results), "digits") is None  # the same world, another seed
    assert "holds a run of world digits" in other_world_in(str(results), "digit_scenes")
    assert "holds a run of world digits" in other_world_in(str(results), "imagenet")

    imagenet = tmp_path / "imagenet"
    (imagenet / "manifests").mkdir(parents=True)  # written by parsing an ImageNet config, even a dry run
    assert other_world_in(str(imagenet), "digits") is None
    (imagenet / "models/source").mkdir(parents=True)  # an imported classifier: an ImageNet run's job
    assert "holds a run of world imagenet" in other_world_in(str(imagenet), "digits")
    assert other_world_in(str(imagenet), "imagenet") is None


def test_digit_scene_sizes_and_conditions_that_would_misalign_or_mislabel_are_refused():
    def scene_problems(mutate):
        config = copy.deepcopy(TINY_SCENES)
        mutate(config)
        validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
        return config_problems(config, 11)

    assert scene_problems(lambda c: None) == []
    resolution = TINY_SCENES["digit_scenes"]["resolution"]
    found = scene_problems(lambda c: c["digit_scenes"].update(resolution=resolution + 8))
    assert any(p.startswith("denoisers.unconditional.spec: image_size") for p in found)
    assert any(p.startswith("denoisers.generator.spec: image_size") for p in found)
    assert any(p.startswith("classifier_input: resize") for p in found)
    found = scene_problems(lambda c: c["classifier_input"].update(crop=resolution - 2))
    assert found == [
        f"classifier_input: resize {resolution} and crop {resolution - 2} must both be digit_scenes.resolution "
        f"({resolution}): label maps are scored as stored"
    ]
    found = scene_problems(lambda c: c["denoisers"]["unconditional"]["spec"].update(mask_classes=11))
    assert found == ["denoisers.unconditional.spec: mask_classes is set, but the DDA/MoD model is unconditional"]
    found = scene_problems(lambda c: c["denoisers"]["generator"]["spec"].update(num_classes=11))
    assert any("num_classes is set, but a segmentation generator" in p for p in found)


def _scene_problems(mutate):
    config = copy.deepcopy(TINY_SCENES)
    mutate(config)
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    return config_problems(config, 11)


@pytest.mark.parametrize("index, refused", [(-1, False), (3, False), (-4, False), (4, True), (99, True), (-5, True)])
def test_a_segmenter_feature_level_the_backbone_lacks_is_refused_not_wrapped_around(index, refused):
    """convnext_atto has 4 feature levels: 4 used to build the shallowest and 99 the deepest."""
    found = _scene_problems(lambda c: c["architectures"][0]["segmenter"].update(feature_index=index))
    expected = "architectures: tiny_deeplab: segmenter.feature_index"
    assert any(expected in p and "has 4 feature levels, so -4 .. 3" in p for p in found) == refused, found


def test_scene_counts_that_cannot_be_honoured_are_refused():
    found = _scene_problems(lambda c: c["digit_scenes"].update(validation_images=100))
    assert found == [
        "digit_scenes.validation_images: 100 scenes per validation corruption, but they are taken from the 6 test "
        "scenes (digit_scenes.test_scenes)"
    ]
    with pytest.raises(Exception) as error:  # one scene: every bootstrap resample is that scene
        _scene_problems(lambda c: c["digit_scenes"].update(test_scenes=1))
    from sda_core.config_checks import schema_problem

    assert schema_problem(error.value) == (
        "config: digit_scenes.test_scenes: 1 is less than the minimum of 2 (schemas/config.schema.yaml)"
    )


def test_generator_sizes_and_kinds_that_would_fail_in_a_job_are_refused():
    """A scene size of 9 passed parsing and failed in the denoiser's training; a DiT was refused as
    "label maps of None classes"."""

    def odd(config):
        config["digit_scenes"]["resolution"] = 9
        config["classifier_input"].update(resize=9, crop=9)
        for role in ("unconditional", "generator"):
            config["denoisers"][role]["spec"]["image_size"] = 9

    found = _scene_problems(odd)
    for role in ("unconditional", "generator"):
        assert f"denoisers.{role}.spec: attention resolution 4 does not divide image_size 9" in found
        assert any(p.startswith(f"denoisers.{role}.spec: image_size 9 is not divisible by 2") for p in found)
    found = _scene_problems(lambda c: c["denoisers"]["generator"].update(spec="dit-xl-2-256"))
    assert any("a DiT cannot condition on label maps" in p for p in found), found


def test_a_finished_run_without_its_data_folder_is_told_apart_or_said_not_to_be(tmp_path):
    """A scenes run whose data/ was deleted used to be refused as "a run of world imagenet"."""
    from sda_core.store import write_store
    from sda_core.tasks import TASKS
    from sda_core.worlds import other_world_in

    results = tmp_path / "results"
    (results / "models").mkdir(parents=True)
    (results / "models/unconditional.safetensors").write_bytes(b"trained here")
    assert "cannot be told" in other_world_in(str(results), "digits")
    assert "cannot be told" in other_world_in(str(results), "digit_scenes")
    images, maps = np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 4), np.uint8)
    write_store(results / "target/fog.zarr", images, maps, 2, {}, layout=TASKS["segmentation"].label_layout(4))
    assert "holds a run of world digit_scenes" in other_world_in(str(results), "digits")
    assert "holds a run of world digit_scenes" in other_world_in(str(results), "imagenet")
    assert other_world_in(str(results), "digit_scenes") is None


def test_a_released_finetuned_model_beside_studies_that_fine_tune_here_is_refused():
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper["architectures"][1]["finetuned_weights"] = "checkpoints/sda/swin_t.pth"
    unpaired = copy.deepcopy(paper)
    unpaired["studies"]["generated_only"]["enabled"] = False
    validate(unpaired, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert config_problems(unpaired, 1000) == [
        "architectures: swin_t: finetuned_weights with weights: null, so f would be timm's pretrained model and "
        "f' fine-tuned from another one; set weights to the file f' was fine-tuned from"
    ]
    paper["architectures"][1]["weights"] = "checkpoints/openmmlab/swin_t.pth"
    validate(paper, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    (problem,) = config_problems(copy.deepcopy(paper), 1000)
    assert problem.startswith("architectures: swin_t: finetuned_weights (a released f') beside studies that fine-tune")
    assert "finetuned-generated" in problem
    paper["studies"]["generated_only"]["enabled"] = False
    assert config_problems(paper, 1000) == []


def test_segmentation_refuses_to_run_without_diffpure_at_parse_time():
    config = copy.deepcopy(TINY_SCENES)
    config["diffpure"] = {"enabled": False}
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    assert any("diffpure.enabled: false" in problem for problem in config_problems(config, 11))
