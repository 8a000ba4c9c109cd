"""Where each external input of the ImageNet experiment comes from, and one check that all are present.

A run on a machine without the weights or the data stops before any job starts, with one message
that lists every missing path and how to obtain it (not one error per job, hours apart).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sda_core.downloads import HOW_TO_OBTAIN, OPENMMLAB_RELEASES
from sda_core.image_sets import makes_synthetic_sets
from sda_core.models.specs import is_latent


def pretrained_hub_id(timm_name: str) -> str | None:
    """The Hugging Face repository of timm's pretrained weights for `timm_name`, if timm has one.

    A `name.tag` maps to timm/<name.tag> directly; only an untagged name asks timm for its default tag
    (importing timm takes seconds, and this runs when the workflow is parsed).
    """
    if "." in timm_name:
        return f"timm/{timm_name}"
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    return cfg.hf_hub_id if cfg is not None else None


def cached_pretrained_weights(timm_name: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """timm's pretrained weights of `timm_name` in the local Hugging Face cache (default: HF_HUB_CACHE);
    never downloads."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = pretrained_hub_id(timm_name)
    for filename in ("model.safetensors", "pytorch_model.bin") if hub_id else ():
        path = try_to_load_from_cache(hub_id, filename, cache_dir=cache_dir)
        if isinstance(path, str):
            return Path(path)
    return None


def how_to_obtain_weights(timm_name: str, weights: str | None = None) -> str:
    """Where a source model's weights come from: an OpenMMLab release file by its name, else timm's hub."""
    if weights is not None and Path(weights).name in OPENMMLAB_RELEASES:
        return f"the OpenMMLab release file: {OPENMMLAB_RELEASES[Path(weights).name]}"
    hub_id = pretrained_hub_id(timm_name) or f"timm/{timm_name}"
    return (
        f"Fetch timm's weights once where there is network access (`huggingface-cli download {hub_id} "
        "model.safetensors`, then copy the Hugging Face cache, or set HF_HUB_CACHE to it), or set the "
        "architecture's `weights:` to a local file."
    )


def vae_directory(checkpoint: str | os.PathLike | None, vae: str | os.PathLike | None) -> str | None:
    """The VAE of a generator: the configured one, else the vae/ of a diffusers DiT directory, else None."""
    if vae is not None:
        return str(vae)
    if checkpoint is not None and Path(checkpoint).is_dir():
        return str(Path(checkpoint) / "vae")
    return None


def imagenet_folder(config: dict, image_set: str) -> tuple[str, bool]:
    """The folder an ImageNet image set ("clean", a corruption or a named target) is read from, and
    whether it is ImageNet val, to be prepared (and corrupted) by the workflow rather than read as published."""
    imagenet = config["imagenet"]
    roots = {target["name"]: target["root"] for target in config["targets"]}
    if image_set in roots:
        return roots[image_set], False
    if image_set == "clean" or imagenet["target"] == "imagenet_val":
        return imagenet["val_root"], True
    return str(Path(imagenet["imagenet_c_root"]) / image_set / str(config["corruptions"]["severity"])), False


def adapted_folder(config: dict, image_set: str) -> str | None:
    """The folder of pre-adapted (DDA) copies of an ImageNet image set, or None where DDA runs here:
    imagenet.adapted_root in the ImageNet-C layout for a corruption, targets[].adapted_root for a
    named target; never for the clean set or corruptions made here from val."""
    imagenet = config["imagenet"]
    roots = {target["name"]: target["adapted_root"] for target in config["targets"]}
    if image_set in roots:
        return roots[image_set]
    if image_set == "clean" or imagenet["target"] == "imagenet_val" or imagenet["adapted_root"] is None:
        return None
    return str(Path(imagenet["adapted_root"]) / image_set / str(config["corruptions"]["severity"]))


def target_sets(config: dict) -> list[str]:
    """The target sets of a validated config: its test and validation corruptions, then its named targets."""
    corruptions = config["corruptions"]
    return [*corruptions["test"], *corruptions["validation"], *(target["name"] for target in config["targets"])]


def runs_unconditional_model(config: dict) -> bool:
    """Whether a validated `world: imagenet` run diffuses anything: DDA on a set not pre-adapted or on
    the clean set (and the timestep study there), DiffPure, a per-image stage that runs the denoiser
    (GDA), MoD."""
    from sda_core.methods import PER_IMAGE_STAGES

    return (
        any(adapted_folder(config, image_set) is None for image_set in target_sets(config))
        or config["imagenet"]["val_root"] is not None
        or config["diffpure"]["enabled"]
        or any(stage.reads_denoiser and config[name]["enabled"] for name, stage in PER_IMAGE_STAGES.items())
        or makes_synthetic_sets(config)
    )


def imagenet_set_folders(config: dict) -> dict[str, str]:
    """Every class-folder tree a validated `world: imagenet` config reads, by what it is: the target
    sets, their pre-adapted copies and ImageNet val (the clean set); they must share one wnid list."""
    sets = target_sets(config)
    folders = {image_set: imagenet_folder(config, image_set)[0] for image_set in sets}
    for image_set in sets:
        adapted = adapted_folder(config, image_set)
        if adapted is not None:
            folders[f"{image_set} pre-adapted"] = adapted
    if config["imagenet"]["val_root"]:
        folders["clean (ImageNet val)"] = config["imagenet"]["val_root"]
    return folders


@dataclass(frozen=True)
class Requirement:
    path: str
    what: str
    how_to_obtain: str

    def present(self) -> bool:
        return Path(self.path).exists()


def imagenet_requirements(config: dict, classifier_weights: dict[str, str | None]) -> list[Requirement]:
    """Every file and folder a validated `world: imagenet` config reads.

    classifier_weights maps each architecture to its weights file (None: not in the local cache).
    """
    imagenet = config["imagenet"]
    unconditional, generator = config["denoisers"]["unconditional"], config["denoisers"]["generator"]
    synthetic = makes_synthetic_sets(config)
    required = []
    if runs_unconditional_model(config):
        required.append(
            Requirement(str(unconditional["checkpoint"]), "unconditional ADM weights", HOW_TO_OBTAIN["adm"])
        )
    if synthetic:
        required.append(Requirement(str(generator["checkpoint"]), "DiT generator weights", HOW_TO_OBTAIN["dit"]))
    if synthetic and is_latent(generator["spec"]):
        vae = vae_directory(generator["checkpoint"], generator["vae"])
        required.append(
            Requirement(
                vae or "<denoisers.generator.vae is not set>", "DiT's VAE (sd-vae-ft-ema)", HOW_TO_OBTAIN["vae"]
            )
        )
    for arch in config["architectures"]:
        path = classifier_weights[arch["name"]]
        required.append(
            Requirement(
                str(path or f"<Hugging Face cache>/{arch['timm_name']}"),
                f"source classifier {arch['name']} ({arch['timm_name']})",
                how_to_obtain_weights(arch["timm_name"], arch["weights"]),
            )
        )
    for arch in config["architectures"]:
        if arch["finetuned_weights"]:
            required.append(
                Requirement(
                    arch["finetuned_weights"], f"released fine-tuned {arch['name']}", HOW_TO_OBTAIN["finetuned"]
                )
            )
    if imagenet["target"] == "imagenet_c":
        for corruption in config["corruptions"]["test"] + config["corruptions"]["validation"]:
            required.append(
                Requirement(
                    imagenet_folder(config, corruption)[0],
                    f"ImageNet-C {corruption}, severity {config['corruptions']['severity']}",
                    HOW_TO_OBTAIN["imagenet_c"],
                )
            )
    if imagenet["target"] == "imagenet_val" or imagenet["val_root"]:
        required.append(
            Requirement(
                imagenet["val_root"] or "<imagenet.val_root is not set>",
                "ImageNet validation images",
                HOW_TO_OBTAIN["imagenet_val"],
            )
        )
    for target in config["targets"]:
        required.append(Requirement(target["root"], f"target set {target['name']}", HOW_TO_OBTAIN["target"]))
    for image_set in target_sets(config):
        folder = adapted_folder(config, image_set)
        if folder is not None:
            required.append(Requirement(folder, f"pre-adapted (DDA) {image_set}", HOW_TO_OBTAIN["adapted"]))
    if imagenet["subset_file"]:
        required.append(Requirement(imagenet["subset_file"], "image subset file", HOW_TO_OBTAIN["subset"]))
    gda = config["gda"]
    if gda["enabled"] and gda["vgg_weight"] and gda["vgg"]:
        required.append(Requirement(gda["vgg"], "GDA's VGG-19 weights", HOW_TO_OBTAIN["vgg"]))
    if gda["enabled"] and gda["clip_weight"] and gda["clip"]["weights"]:
        required.append(Requirement(gda["clip"]["weights"], "GDA's CLIP ViT-B/16 weights", HOW_TO_OBTAIN["clip"]))
    return required


def missing_inputs_message(requirements: list[Requirement]) -> str | None:
    """One message listing every absent input with how to obtain it, or None when all are present."""
    missing = [r for r in requirements if not r.present()]
    if not missing:
        return None
    lines = [
        f"{len(missing)} input(s) of the ImageNet experiment are missing; set their paths in the config "
        "(config.yaml) or put the files there:"
    ]
    for how in dict.fromkeys(r.how_to_obtain for r in missing):  # one "obtain" line per source
        lines += [f"  - {r.what}: {r.path}" for r in missing if r.how_to_obtain == how]
        lines.append(f"      obtain: {how}")
    return "\n".join(lines)
