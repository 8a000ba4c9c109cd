"""DiT (Peebles & Xie 2023) through diffusers' DiTTransformer2DModel, behind the sampler's interface, and the
official class-conditional DiT-XL/2 256 with the VAE that maps its 32x32x4 latents to 256x256 images.

The official weights come in two forms, both read without unpickling objects (sda_core.checkpoints):
- facebookresearch/DiT's `DiT-XL-2-256x256.pt`, a state dict in the original naming (convert_original_dit),
  plus the VAE `stabilityai/sd-vae-ft-ema` as a diffusers AutoencoderKL directory;
- the diffusers directory `facebook/DiT-XL-2-256`: transformer/ and vae/ (its scheduler/ is unused: the
  schedule is sda_core.diffusion.schedule's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sda_core.checkpoints import CheckpointError, load_state, load_weights, read_state_dict
from sda_core.downloads import HOW_TO_OBTAIN

HOW_TO_OBTAIN_DIT = f"The official DiT-XL/2 256 weights: {HOW_TO_OBTAIN['dit']}."
HOW_TO_OBTAIN_VAE = f"The DiT VAE: {HOW_TO_OBTAIN['vae']} (a facebook/DiT-XL-2-256 download holds one in vae/)."
# A diffusers model directory: config.json and one of these weights files, the first found is used.
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class DiTDenoiser(nn.Module):
    """A class-conditional DiT called as denoiser(x_t, t, labels) -> [eps, v] like the ADM UNet.

    Pixel space for a DiT trained by this workflow; the official weights run on VAE latents (load_dit).
    Set out_channels = 2 * in_channels for the learned-range variance DiT was trained with.
    """

    def __init__(self, **transformer_kwargs):
        super().__init__()
        from diffusers import DiTTransformer2DModel  # heavy import, only for jobs that need a DiT

        self.transformer = DiTTransformer2DModel(**transformer_kwargs)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("DiT is class-conditional: labels are required")
        return self.transformer(x, timestep=timesteps, class_labels=y).sample


def follow_original_dit(model: DiTDenoiser) -> DiTDenoiser:
    """Make diffusers' port compute the function of facebookresearch/DiT, the code the official weights were
    trained with. The port differs in two places:
    - timestep frequencies: the original uses exp(-ln(10^4) i / 128), i < 128; diffusers divides by 127
      (downscale_freq_shift=1), which turns some of the angles of t=500 by 1.4 rad;
    - the LayerNorm before each MLP has eps 1e-6 in the original, diffusers' norm_eps default is 1e-5.
    """
    for block in model.transformer.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
        block.norm3.eps = 1e-6
    return model


# facebookresearch/DiT module -> DiTTransformer2DModel module, for modules outside the blocks ...
_TOP_LEVEL = {
    "x_embedder.proj": "pos_embed.proj",
    "final_layer.adaLN_modulation.1": "proj_out_1",
    "final_layer.linear": "proj_out_2",
}
# ... for the conditioning embedders, one shared copy in the original, one copy per block in diffusers ...
_PER_BLOCK_COPIES = {
    "t_embedder.mlp.0": "norm1.emb.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "norm1.emb.timestep_embedder.linear_2",
    "y_embedder.embedding_table": "norm1.emb.class_embedder.embedding_table",
}
# ... and inside block N (blocks.N. -> transformer_blocks.N.); attn.qkv is split, see convert_original_dit.
_IN_BLOCK = {
    "adaLN_modulation.1": "norm1.linear",
    "attn.proj": "attn1.to_out.0",
    "mlp.fc1": "ff.net.0.proj",
    "mlp.fc2": "ff.net.2",
}


def convert_original_dit(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A facebookresearch/DiT state dict in DiTTransformer2DModel's naming (weights and biases alike):

    x_embedder.proj                       -> pos_embed.proj
    t_embedder.mlp.{0,2}                  -> transformer_blocks.N.norm1.emb.timestep_embedder.linear_{1,2}, every N
    y_embedder.embedding_table (+ null row) -> transformer_blocks.N.norm1.emb.class_embedder.embedding_table, every N
    blocks.N.adaLN_modulation.1           -> transformer_blocks.N.norm1.linear (shift, scale, gate for attn,
                                             then for MLP: the same order in both)
    blocks.N.attn.qkv (rows q, k, v)      -> transformer_blocks.N.attn1.to_q, to_k, to_v
    blocks.N.attn.proj                    -> transformer_blocks.N.attn1.to_out.0
    blocks.N.mlp.fc1, fc2                 -> transformer_blocks.N.ff.net.0.proj, ff.net.2
    final_layer.adaLN_modulation.1        -> proj_out_1 (shift, scale)
    final_layer.linear                    -> proj_out_2
    pos_embed                             -> dropped: the fixed sin-cos table, which diffusers recomputes

    Other keys are kept as they are, so that a strict load reports them.
    """
    num_blocks = 1 + max((int(key.split(".")[1]) for key in state if key.startswith("blocks.")), default=-1)
    converted = {}
    for key, tensor in state.items():
        if key == "pos_embed":
            continue
        module, _, param = key.rpartition(".")
        prefix, block, inner = (module.split(".", 2) + ["", ""])[:3]  # blocks, N, attn.qkv
        if module in _TOP_LEVEL:
            converted[f"{_TOP_LEVEL[module]}.{param}"] = tensor
        elif module in _PER_BLOCK_COPIES:
            for n in range(num_blocks):
                converted[f"transformer_blocks.{n}.{_PER_BLOCK_COPIES[module]}.{param}"] = tensor
        elif prefix == "blocks" and inner == "attn.qkv":
            for name, part in zip(("to_q", "to_k", "to_v"), tensor.chunk(3)):
                converted[f"transformer_blocks.{block}.attn1.{name}.{param}"] = part
        elif prefix == "blocks" and inner in _IN_BLOCK:
            converted[f"transformer_blocks.{block}.{_IN_BLOCK[inner]}.{param}"] = tensor
        else:
            converted[key] = tensor
    return converted


def load_dit(spec: dict, checkpoint: str | os.PathLike) -> DiTDenoiser:
    """The official DiT weights, in either published form, in a DiTDenoiser built from `spec` (arch aside).

    checkpoint: facebookresearch/DiT's state dict file (.pt or .safetensors; a {"ema": ...} wrapper is
    unwrapped), or a diffusers directory in the facebook/DiT-XL-2-256 layout, whose transformer/config.json
    must agree with the spec on the keys both give.
    """
    kwargs = {key: value for key, value in spec.items() if key != "arch"}
    model = DiTDenoiser(**kwargs)
    path = Path(checkpoint)
    if path.is_dir():
        _check_diffusers_config(path / "transformer", kwargs)
        load_weights(
            model.transformer, diffusers_weights_file(path / "transformer", HOW_TO_OBTAIN_DIT), HOW_TO_OBTAIN_DIT
        )
        return follow_original_dit(model)

    state = read_state_dict(path, HOW_TO_OBTAIN_DIT)
    # the one key that tells the latent size the weights were trained for (a 512 model fits every other shape)
    patches = model.transformer.pos_embed.pos_embed.shape[1]
    if "pos_embed" in state and state["pos_embed"].shape[1] != patches:
        raise CheckpointError(
            f"checkpoint {path} has a position table of {state['pos_embed'].shape[1]} patches; "
            f"the spec's sample_size and patch_size give {patches}"
        )
    load_state(model.transformer, convert_original_dit(state), path)
    return follow_original_dit(model)


def _check_diffusers_config(directory: Path, spec_kwargs: dict) -> None:
    """The spec builds the model; config.json must not say otherwise (e.g. 18 heads of 64 fit 16 of 72's weights)."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"diffusers config not found: {config_path}. {HOW_TO_OBTAIN_DIT}")
    config = json.loads(config_path.read_text())
    differences = [
        f"{key}: {value!r} in the spec, {config[key]!r} in the file"
        for key, value in spec_kwargs.items()
        if key in config and config[key] != value
    ]
    if differences:
        raise CheckpointError(f"{config_path} does not describe the configured DiT; " + "; ".join(differences))


def diffusers_weights_file(directory: str | os.PathLike, how_to_obtain: str = "") -> Path:
    """The weights file of a diffusers model directory (DIFFUSERS_WEIGHTS, first found)."""
    for name in DIFFUSERS_WEIGHTS:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    raise FileNotFoundError(
        f"no weights file in {directory} (looked for {' or '.join(DIFFUSERS_WEIGHTS)}). {how_to_obtain}"
    )


# Attention names of VAE files written by diffusers < 0.14, which the current AutoencoderKL renamed.
_LEGACY_VAE_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _current_vae_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        parent, _, name = module.rpartition(".")
        if ".attentions." in parent and name in _LEGACY_VAE_ATTENTION:
            key = f"{parent}.{_LEGACY_VAE_ATTENTION[name]}.{param}"
        renamed[key] = tensor
    return renamed


def load_vae(directory: str | os.PathLike) -> nn.Module:
    """A diffusers AutoencoderKL directory (config.json + weights) loaded strictly, in eval mode and frozen."""
    from diffusers import AutoencoderKL

    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"VAE config not found: {config_path}. {HOW_TO_OBTAIN_VAE}")
    vae = AutoencoderKL.from_config(json.loads(config_path.read_text()))
    weights = diffusers_weights_file(directory, HOW_TO_OBTAIN_VAE)
    load_state(vae, _current_vae_names(read_state_dict(weights)), weights)
    return vae.eval().requires_grad_(False)


def vae_image_size(vae: nn.Module, latent_size: int) -> int:
    """Side of the decoded image: the decoder doubles it between consecutive blocks (8x for sd-vae)."""
    return latent_size * 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def decode_latents(vae: nn.Module, latents: torch.Tensor, latent_scale: float) -> torch.Tensor:
    """Images in about [-1, 1] from DiT latents, which live in the VAE's latent space times latent_scale."""
    return vae.decode(latents.float() / latent_scale).sample
