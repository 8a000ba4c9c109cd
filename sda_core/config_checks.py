"""Checks of a validated configuration that its schema cannot express, run when the workflow parses.

Each returns every problem it finds, naming the key and the valid choices; the workflow refuses to
start with one message listing them all, before any job runs (and before Snakemake deletes the
output of any job it would rerun).
"""

from __future__ import annotations

from collections import Counter

from sda_core import batching, compilation, precision
from sda_core.methods import PER_IMAGE_STAGES
from sda_core.models.kinds import kind_of, kind_problems
from sda_core.models.specs import image_size, is_latent, mask_classes, num_classes, spec_problems
from sda_core.studies import Studies
from sda_core.worlds import is_embedded, task_of, task_problems


def schema_problem(error: BaseException) -> str:
    """A schema validation error as one line naming the key ("digit_scenes.test_scenes: 1 is less than the
    minimum of 2"), from the jsonschema error behind snakemake's (its own message names no key)."""
    cause = error.__cause__ or error.__context__
    path = getattr(cause, "absolute_path", None)
    if path is None:
        return str(error)
    key = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in path).replace(".[", "[")
    return f"config: {key or 'the top level'}: {cause.message} (schemas/config.schema.yaml)"


def config_problems(config: dict, data_classes: int) -> list[str]:
    """Every problem of a schema-validated config whose data has `data_classes` classes, section by section."""
    specs, spec_found = denoiser_specs(config)
    mismatch = task_problems(config)
    return [
        *architecture_problems(config),
        *kind_problems(config, data_classes),
        *stage_architecture_problems(config),
        *corruption_problems(config),
        *target_problems(config),
        *gda_problems(config),
        *runtime_problems(config),
        *imagenet_problems(config),
        *spec_found,
        *unconditional_problems(config, specs),
        *(scene_size_problems(config, specs) if config["world"] == "digit_scenes" else []),
        *(mismatch or task_of(config["world"]).problems(config, specs, data_classes)),
        *gate_problems(config),
        *adaptation_problems(config),
        *study_problems(config),
    ]


def architecture_problems(config: dict) -> list[str]:
    names = Counter(arch["name"] for arch in config["architectures"])
    problems = [
        f"architectures: the name {name!r} is used {count} times; names must be unique"
        for name, count in names.items()
        if count > 1
    ]
    return problems + [
        f"architectures: {arch['name']}: memo.momentum applies to sgd, not adamw"
        for arch in config["architectures"]
        if arch["memo"]["optimizer"] == "adamw" and arch["memo"]["momentum"] != 0
    ]


def corruption_problems(config: dict) -> list[str]:
    corruptions = config["corruptions"]
    both = [c for c in corruptions["test"] if c in corruptions["validation"]]
    if not both:
        return []
    return [
        f"corruptions: {', '.join(both)} in both test and validation; a corruption tuned on "
        "must not be scored as a test corruption"
    ]


def runtime_problems(config: dict) -> list[str]:
    """The device, precision, compilation and automatic batch size asked for, together."""
    found = (
        batching.auto_problem(config["adaptation"]["batch_size"], config["adaptation"]["guidance"]),
        precision.device_problem(config["precision"], config["device"]),
        compilation.device_problem(config["compile"], config["device"]),
    )
    return [problem for problem in found if problem]


def imagenet_problems(config: dict) -> list[str]:
    """ImageNet-only keys on an embedded world; pre-adapted sets, subsets and unreadable files together."""
    imagenet, world = config["imagenet"], config["world"]
    problems = [
        f"imagenet.{key}: world {world} makes its target sets here; it applies to world imagenet"
        for key in ("adapted_root", "subset_file")
        if is_embedded(world) and imagenet[key] is not None
    ]
    problems += [
        f"architectures: {arch['name']}: finetuned_weights: world {world} fine-tunes here; it applies to world imagenet"
        for arch in config["architectures"]
        if world != "imagenet" and arch["finetuned_weights"]
    ]
    if world != "imagenet":
        return problems
    pre_adapted = imagenet["adapted_root"] is not None or any(t["adapted_root"] for t in config["targets"])
    if pre_adapted and imagenet["skip_unreadable"]:
        problems.append(
            "imagenet.skip_unreadable with pre-adapted sets: a file skipped on one side only would shift every "
            "pair after it; replace the unreadable files, or set skip_unreadable: false"
        )
    if imagenet["adapted_root"] and imagenet["target"] == "imagenet_val":
        problems.append(
            "imagenet.adapted_root: pre-adapted images pair with the published ImageNet-C (imagenet.target: "
            "imagenet_c), not with corruptions made here from val"
        )
    released = [arch["name"] for arch in config["architectures"] if arch["finetuned_weights"]]
    # the study variants of f' (f_c', set sizes, f'_t) would be fine-tuned here by another recipe
    studies = Studies.from_config(config, has_clean=bool(imagenet["val_root"]))
    fine_tuning_studies = studies.finetuned_models()[1:]
    unpaired = [arch["name"] for arch in config["architectures"] if arch["finetuned_weights"] and not arch["weights"]]
    if unpaired:
        problems.append(
            f"architectures: {', '.join(unpaired)}: finetuned_weights with weights: null, so f would be timm's "
            "pretrained model and f' fine-tuned from another one; set weights to the file f' was fine-tuned from"
        )
    if released and fine_tuning_studies:
        problems.append(
            f"architectures: {', '.join(released)}: finetuned_weights (a released f') beside studies that "
            f"fine-tune ({', '.join(fine_tuning_studies)}) here by another recipe; turn those studies off "
            "(studies.generated_only, set_size, timesteps.matched_mod, gda_aligned), or unset finetuned_weights"
        )
    if imagenet["subset_file"] and imagenet["images_per_class"]:
        problems.append(
            "imagenet.subset_file and imagenet.images_per_class are both set; choose one way to take a subset"
        )
    return problems


def denoiser_specs(config: dict) -> tuple[dict, list[str]]:
    """role -> its spec, for the specs without a problem; and the problems of the others."""
    specs, problems = {}, []
    for role in ("unconditional", "generator"):
        found = spec_problems(config["denoisers"][role]["spec"], f"denoisers.{role}.spec")
        problems += found
        if not found:
            specs[role] = config["denoisers"][role]["spec"]
    return specs, problems


def unconditional_problems(config: dict, specs: dict) -> list[str]:
    """The DDA/MoD model: unconditional, on RGB pixels, at least as large as the guidance's low-pass."""
    if "unconditional" not in specs:
        return []
    spec, problems = specs["unconditional"], []
    if num_classes(spec) is not None or mask_classes(spec):
        key = "num_classes" if num_classes(spec) is not None else "mask_classes"
        problems.append(f"denoisers.unconditional.spec: {key} is set, but the DDA/MoD model is unconditional")
    if is_latent(spec):
        problems.append("denoisers.unconditional.spec: in_channels must be 3 (adaptation works on RGB pixels)")
    size, downsample = image_size(spec), config["adaptation"]["guidance"]["downsample"]
    if downsample > size:
        problems.append(
            f"adaptation.guidance.downsample: {downsample} is larger than the unconditional model's "
            f"images ({size} px); at most {size}"
        )
    return problems


def gate_problems(config: dict) -> list[str]:
    has_clean = is_embedded(config["world"]) or config["imagenet"]["val_root"] is not None
    if config["gates"]["source_clean_accuracy"] is None or has_clean:
        return []
    return [
        "gates.source_clean_accuracy: there are no clean target images to measure it on; set "
        "imagenet.val_root, or the gate to null"
    ]


def adaptation_problems(config: dict) -> list[str]:
    adaptation = config["adaptation"]
    most = adaptation["respacing"] - 1 if adaptation["noise_index"] == "reference" else adaptation["respacing"]
    if adaptation["steps"] <= most:
        return []
    return [
        f"adaptation.steps: {adaptation['steps']} steps do not fit a respacing of "
        f"{adaptation['respacing']} with noise_index {adaptation['noise_index']}; at most {most}"
    ]


def study_problems(config: dict) -> list[str]:
    studies, problems = config["studies"], []
    full = config["sampling"]["images_per_class"]
    too_many = [k for k in studies["set_size"]["images_per_class"] if k >= full]
    if studies["set_size"]["enabled"] and too_many:
        problems.append(
            f"studies.set_size.images_per_class: {', '.join(map(str, too_many))} not below the "
            f"{full} generated images per class (sampling.images_per_class); the whole set is f' itself"
        )
    if studies["fusions"]["enabled"] and not config["corruptions"]["validation"]:
        problems.append(
            "studies.fusions: its tuned weight is chosen on the validation corruptions, and "
            "corruptions.validation is empty; name some, or set studies.fusions.enabled: false"
        )
    gda = config["gda"]
    # the architectures that can run GDA (a vlm cannot, and makes no f'_GDA: sda_core.models.kinds)
    names = [arch["name"] for arch in config["architectures"] if "gda" not in kind_of(arch).refused_stages]
    without = [name for name in names if gda["architectures"] is not None and name not in gda["architectures"]]
    if studies["gda_aligned"]["enabled"] and (not gda["enabled"] or without):
        # every architecture's fine-tuning job makes the same models; f'_GDA needs GDA's guidance by its f
        problems.append(
            "studies.gda_aligned: f'_GDA learns from MoD made by GDA under each architecture's f, and scores "
            "GDA's images: it needs GDA for every architecture; "
            + ("GDA is off" if not gda["enabled"] else f"gda.architectures leaves out {', '.join(without)}")
            + "; or set studies.gda_aligned.enabled: false"
        )
    return problems


def scene_size_problems(config: dict, specs: dict) -> list[str]:
    """The digit scenes' label maps line up with the images only at the scenes' own size: in both
    denoisers (adaptation and generation) and in the segmenter's input (no resize, no crop)."""
    resolution = config["digit_scenes"]["resolution"]
    problems = [
        f"denoisers.{role}.spec: image_size {image_size(spec)} differs from digit_scenes.resolution {resolution}; "
        "the label maps would not line up with its images"
        for role, spec in specs.items()
        if image_size(spec) != resolution
    ]
    scenes = config["digit_scenes"]
    if scenes["validation_images"] is not None and scenes["validation_images"] > scenes["test_scenes"]:
        problems.append(
            f"digit_scenes.validation_images: {scenes['validation_images']} scenes per validation corruption, "
            f"but they are taken from the {scenes['test_scenes']} test scenes (digit_scenes.test_scenes)"
        )
    sizes = config["classifier_input"]
    if (sizes["resize"], sizes["crop"]) != (resolution, resolution):
        problems.append(
            f"classifier_input: resize {sizes['resize']} and crop {sizes['crop']} must both be "
            f"digit_scenes.resolution ({resolution}): label maps are scored as stored"
        )
    return problems


def stage_architecture_problems(config: dict) -> list[str]:
    """The per-image stages' architecture lists (memo, gda, tent): names that exist, not an empty list."""
    names = [arch["name"] for arch in config["architectures"]]
    problems = []
    for stage in PER_IMAGE_STAGES:
        chosen = config[stage].get("architectures")
        if not config[stage]["enabled"] or chosen is None:
            continue
        if chosen == []:
            # an empty list would drop the stage's rows from every table without a word; null means all
            problems.append(
                f"{stage}.architectures: [] runs {stage.upper()} for no architecture; list some, leave it null "
                "for all, "
                f"or set {stage}.enabled: false"
            )
        unknown = [name for name in chosen if name not in names]
        if unknown:
            problems.append(
                f"{stage}.architectures: {', '.join(unknown)} not among the architectures ({', '.join(names)})"
            )
    return problems


def gda_problems(config: dict) -> list[str]:
    """GDA: its architectures exist, its steps fit its respacing, and each term with a weight has the
    model it needs (VGG-19 needs images of 32 px or more)."""
    gda = config["gda"]
    if not gda["enabled"]:
        return []
    problems = []
    if gda["steps"] > gda["respacing"]:
        problems.append(f"gda.steps: {gda['steps']} steps do not fit a respacing of {gda['respacing']}")
    if not any(gda[f"{term}_weight"] for term in ("entropy", "pixel", "vgg", "clip")):
        problems.append("gda: every loss weight is 0, so nothing guides it; set a weight, or gda.enabled: false")
    if gda["vgg_weight"] and gda["vgg"] is None:
        problems.append(
            f"gda.vgg_weight: {gda['vgg_weight']} with no gda.vgg weights file; set gda.vgg (torchvision's "
            "vgg19-dcbb9e9d.pth), or gda.vgg_weight: 0 to run without the term (a deviation)"
        )
    if gda["clip_weight"] and gda["clip"]["weights"] is None:
        problems.append(
            f"gda.clip_weight: {gda['clip_weight']} with no gda.clip.weights file; set it (OpenAI's ViT-B/16 in "
            "open_clip's format), or gda.clip_weight: 0 to run without the term (a deviation)"
        )
    unconditional = config["denoisers"]["unconditional"]["spec"]
    if gda["vgg_weight"] and not spec_problems(unconditional, "") and image_size(unconditional) < 32:
        problems.append(
            f"gda.vgg_weight: VGG-19's relu5_2 needs images of at least 32 px, the unconditional model makes "
            f"{image_size(unconditional)} px; set gda.vgg_weight: 0"
        )
    return problems


def target_problems(config: dict) -> list[str]:
    """Named target sets: unique names that no corruption (or the clean set) uses, each with the source
    its world needs (imagenet: a root folder; digits: a shift made here)."""
    corruptions = config["corruptions"]
    # the set names of the corruptions and of the clean set, and the names of the run's own tables
    taken = {*corruptions["test"], *corruptions["validation"], "clean"}
    taken |= {"c", "c_paired", "sanity", "gates", "claims", "timesteps", "timesteps_gain", "fusion", "provenance"}
    taken.add("mean")  # the tables' row of the mean over corruptions
    names = Counter(target["name"] for target in config["targets"])
    taken |= {f"{name}_paired" for name in names}  # each target's second table
    problems = [f"targets: the name {n!r} is used {count} times" for n, count in names.items() if count > 1]
    for target in config["targets"]:
        key = f"targets: {target['name']}"
        if target["name"] in taken:
            problems.append(
                f"{key}: the name is taken (a corruption, the clean set or a table of the run); choose another"
            )
        if config["world"] == "imagenet" and target["root"] is None:
            problems.append(f"{key}: world imagenet reads a named target from a folder; set its root (<root>/<wnid>/*)")
        if config["world"] == "imagenet" and target["shift"] is not None:
            problems.append(f"{key}: shift makes a digits target; world imagenet reads it from root")
        world = config["world"]
        if is_embedded(world) and target["shift"] is None:
            problems.append(f"{key}: world {world} makes a named target here; set its shift (watermark)")
        if is_embedded(world) and (target["root"] is not None or target["adapted_root"] is not None):
            problems.append(
                f"{key}: world {world} makes its targets here; root and adapted_root are for world imagenet"
            )
    return problems


def unknown_timm_models(config: dict) -> list[str]:
    """Architectures whose timm_name timm does not know, with close matches (imports timm: seconds)."""
    import difflib

    import timm

    problems = []
    for arch in config["architectures"]:
        if "timm_name" in arch and not timm.is_model(arch["timm_name"]):
            close = difflib.get_close_matches(arch["timm_name"].split(".")[0], timm.list_models(), n=3)
            problems.append(
                f"architectures: {arch['name']}: timm has no model {arch['timm_name']!r}"
                + (f"; close: {', '.join(close)}" if close else "")
            )
    return problems


def problems_message(problems: list[str]) -> str:
    return f"{len(problems)} problem(s) in the configuration, found before any job ran:\n" + "\n".join(
        f"  - {problem}" for problem in problems
    )
