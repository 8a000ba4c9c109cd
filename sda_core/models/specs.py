"""Denoiser specs: a config's `spec` names a registered preset, with overrides, or gives every argument.

A spec is {arch: adm|dit, ...constructor arguments}: guided-diffusion's flag names for the ADM UNet
(sda_core.models.adm), diffusers' DiTTransformer2DModel arguments for DiT (sda_core.models.dit). The
presets are the official models, as facebookresearch/DiT names its model dict. Torch-free: the
workflow resolves specs while it parses.
"""

from __future__ import annotations

from collections.abc import Mapping

DENOISER_ARCHS = ("adm", "dit")
# The constructor arguments a spec may give (required ones first), checked against the constructors'
# signatures by the tests: a misspelled key is refused when the workflow parses, not in a job.
ADM_CHANNEL_MULT = (1, 2, 4, 8)  # sda_core.models.adm.ADMUNet's default
SPEC_ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "adm": (
        ("image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks", "attention_resolutions"),
        (
            "dropout",
            "channel_mult",
            "conv_resample",
            "dims",
            "num_classes",
            "num_heads",
            "num_head_channels",
            "num_heads_upsample",
            "use_scale_shift_norm",
            "resblock_updown",
            "use_new_attention_order",
            "norm_groups",
            "mask_classes",
        ),
    ),
    "dit": (
        (),
        (
            "num_attention_heads",
            "attention_head_dim",
            "in_channels",
            "out_channels",
            "num_layers",
            "dropout",
            "norm_num_groups",
            "attention_bias",
            "sample_size",
            "patch_size",
            "activation_fn",
            "num_embeds_ada_norm",
            "upcast_attention",
            "norm_type",
            "norm_elementwise_affine",
            "norm_eps",
        ),
    ),
}
DENOISER_PRESETS: dict[str, dict] = {
    # guided-diffusion's 256x256 unconditional ImageNet model (256x256_diffusion_uncond.pt), trained
    # with --attention_resolutions 32,16,8 --class_cond False --image_size 256 --learn_sigma True
    # --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True
    # --use_scale_shift_norm True. learn_sigma doubles the outputs: eps and the variance interpolation.
    "adm-256-uncond": {
        "arch": "adm",
        "image_size": 256,
        "in_channels": 3,
        "model_channels": 256,
        "out_channels": 6,
        "num_res_blocks": 2,
        "attention_resolutions": "32,16,8",
        "channel_mult": [1, 1, 2, 2, 4, 4],
        "num_head_channels": 64,
        "use_scale_shift_norm": True,
        "resblock_updown": True,
    },
    # facebookresearch/DiT's DiT-XL/2 at 256x256 (DiT-XL-2-256x256.pt): 32x32x4 latents of the
    # sd-vae-ft-ema VAE, patch 2, 28 blocks of 16 heads x 72, 1000 classes, learned sigma.
    "dit-xl-2-256": {
        "arch": "dit",
        "sample_size": 32,
        "patch_size": 2,
        "in_channels": 4,
        "out_channels": 8,
        "num_layers": 28,
        "num_attention_heads": 16,
        "attention_head_dim": 72,
        "num_embeds_ada_norm": 1000,
    },
}


def resolve_spec(spec: str | Mapping) -> dict:
    """The full spec: a preset name, {preset: name, ...overrides}, or a full {arch: ..., ...} mapping."""
    if isinstance(spec, str):
        spec = {"preset": spec}
    spec = dict(spec)
    name = spec.pop("preset", None)
    if name is not None:
        if name not in DENOISER_PRESETS:
            raise ValueError(f"unknown denoiser preset {name!r}; known: {', '.join(DENOISER_PRESETS)}")
        spec = {**DENOISER_PRESETS[name], **spec}
    if spec.get("arch") not in DENOISER_ARCHS:
        raise ValueError(f"denoiser spec needs arch: one of {', '.join(DENOISER_ARCHS)} (or a preset), got {spec}")
    return spec


def is_latent(spec: Mapping) -> bool:
    """Whether a denoiser works on latents (anything but RGB input), so that its images need a VAE decoder."""
    return resolve_spec(spec)["in_channels"] != 3


def spec_problems(spec: str | Mapping, where: str) -> list[str]:
    """What is wrong with a spec (unknown preset or arch, misspelled or missing arguments), or []."""
    try:
        spec = resolve_spec(spec)
    except ValueError as error:
        return [f"{where}: {error}"]
    required, optional = SPEC_ARGUMENTS[spec["arch"]]
    problems = []
    unknown = sorted(set(spec) - {"arch", *required, *optional})
    if unknown:
        problems.append(
            f"{where}: unknown {spec['arch']} argument(s) {', '.join(unknown)}; valid: {', '.join(required + optional)}"
        )
    missing = [key for key in required if key not in spec]
    if missing:
        problems.append(f"{where}: missing {spec['arch']} argument(s) {', '.join(missing)}")
    if spec["arch"] == "adm" and not missing:
        problems += [f"{where}: {problem}" for problem in adm_size_problems(spec)]
    return problems


def adm_size_problems(spec: Mapping) -> list[str]:
    """Sizes an ADM UNet cannot be built or run at: an attention resolution ("32,16,8": resolutions; a
    list of ints is downsample rates) that does not divide its image size, an image size its downsampling
    levels do not halve evenly (the skip connections would not meet)."""
    size = spec["image_size"]
    levels = len(spec.get("channel_mult", ADM_CHANNEL_MULT))
    resolutions = spec["attention_resolutions"]
    resolutions = [int(r) for r in resolutions.split(",") if r.strip()] if isinstance(resolutions, str) else []
    problems = [
        f"attention resolution {r} does not divide image_size {size}" for r in resolutions if r <= 0 or size % r
    ]
    if size % 2 ** (levels - 1):
        problems.append(
            f"image_size {size} is not divisible by {2 ** (levels - 1)}: "
            f"its {levels} levels (channel_mult) halve it {levels - 1} times"
        )
    return problems


def image_size(spec: Mapping) -> int:
    """The pixel size of a pixel-space denoiser's images."""
    spec = resolve_spec(spec)
    return spec.get("image_size") or spec["sample_size"]


def mask_classes(spec: Mapping) -> int | None:
    """The label-map classes a mask-conditional ADM is conditioned on (None: it is not)."""
    spec = resolve_spec(spec)
    return spec.get("mask_classes") if spec["arch"] == "adm" else None


def num_classes(spec: Mapping) -> int | None:
    """The classes a class-conditional denoiser is conditioned on (None: unconditional)."""
    spec = resolve_spec(spec)
    return spec.get("num_classes") if spec["arch"] == "adm" else spec.get("num_embeds_ada_norm")
