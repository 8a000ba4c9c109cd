"""The official DiT in both published forms, on tiny models: conversion, loading, latent sampling, errors.

OriginalDiT below re-implements facebookresearch/DiT's forward with its parameter names, so that a converted
state dict can be checked to give the same function in diffusers' DiTTransformer2DModel.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from sda_core.checkpoints import CheckpointError
from sda_core.external_inputs import vae_directory
from sda_core.jobs.sample import sample_job
from sda_core.models.dit import DiTDenoiser, convert_original_dit, load_dit, load_vae, vae_image_size
from sda_core.store import StoreSequence

LATENT_SIZE, PATCH, CHANNELS, HIDDEN, DEPTH, HEADS, CLASSES = 8, 2, 4, 32, 2, 4, 10
TINY_LATENT_DIT = dict(
    arch="dit",
    sample_size=LATENT_SIZE,
    patch_size=PATCH,
    in_channels=CHANNELS,
    out_channels=2 * CHANNELS,
    num_layers=DEPTH,
    num_attention_heads=HEADS,
    attention_head_dim=HIDDEN // HEADS,
    num_embeds_ada_norm=CLASSES,
)
# Two VAE levels: latents 8x8x4 decode to 16x16x3 images.
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=CHANNELS,
    block_out_channels=(8, 16),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    layers_per_block=1,
    norm_num_groups=4,
    sample_size=2 * LATENT_SIZE,
)


# facebookresearch/DiT, re-implemented -------------------------------------------------------------------------
def sincos_1d(dim, positions):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = np.outer(positions.reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim, grid_size):
    """MAE's table: the first half of the channels encodes the column (w), the second the row (h)."""
    w, h = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32))
    return np.concatenate([sincos_1d(dim // 2, w), sincos_1d(dim // 2, h)], axis=1)


def timestep_frequencies(t, dim=256):
    freqs = torch.exp(-math.log(10000) * torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def container(**children):
    module = nn.Module()
    for name, child in children.items():
        setattr(module, name, child)
    return module


class OriginalDiT(nn.Module):
    """DiT with the original parameter names: x_embedder.proj, t_embedder.mlp.{0,2}, y_embedder.embedding_table
    (with the null row), pos_embed, blocks.N.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2, adaLN_modulation.1},
    final_layer.{adaLN_modulation.1, linear}. Weights keep PyTorch's random init, none of DiT's zeros."""

    def __init__(self):
        super().__init__()
        self.x_embedder = container(proj=nn.Conv2d(CHANNELS, HIDDEN, PATCH, stride=PATCH))
        self.t_embedder = container(mlp=nn.Sequential(nn.Linear(256, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN)))
        self.y_embedder = container(embedding_table=nn.Embedding(CLASSES + 1, HIDDEN))
        table = torch.from_numpy(sincos_2d(HIDDEN, LATENT_SIZE // PATCH)).float()[None]
        self.pos_embed = nn.Parameter(table, requires_grad=False)
        self.blocks = nn.ModuleList(
            container(
                attn=container(qkv=nn.Linear(HIDDEN, 3 * HIDDEN), proj=nn.Linear(HIDDEN, HIDDEN)),
                mlp=container(fc1=nn.Linear(HIDDEN, 4 * HIDDEN), fc2=nn.Linear(4 * HIDDEN, HIDDEN)),
                adaLN_modulation=nn.Sequential(nn.SiLU(), nn.Linear(HIDDEN, 6 * HIDDEN)),
            )
            for _ in range(DEPTH)
        )
        self.final_layer = container(
            adaLN_modulation=nn.Sequential(nn.SiLU(), nn.Linear(HIDDEN, 2 * HIDDEN)),
            linear=nn.Linear(HIDDEN, PATCH * PATCH * 2 * CHANNELS),
        )

    @staticmethod
    def attention(attn, x):
        n, tokens, _ = x.shape
        q, k, v = attn.qkv(x).reshape(n, tokens, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * (HIDDEN // HEADS) ** -0.5).softmax(dim=-1)
        return attn.proj((weights @ v).transpose(1, 2).reshape(n, tokens, HIDDEN))

    def forward(self, x, t, y):
        def modulate(h, shift, scale):
            return F.layer_norm(h, (HIDDEN,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]

        x = self.x_embedder.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.t_embedder.mlp(timestep_frequencies(t)) + self.y_embedder.embedding_table(y)
        for block in self.blocks:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = block.adaLN_modulation(c).chunk(6, dim=1)
            x = x + gate_msa[:, None] * self.attention(block.attn, modulate(x, shift_msa, scale_msa))
            mlp_in = modulate(x, shift_mlp, scale_mlp)
            x = x + gate_mlp[:, None] * block.mlp.fc2(F.gelu(block.mlp.fc1(mlp_in), approximate="tanh"))
        shift, scale = self.final_layer.adaLN_modulation(c).chunk(2, dim=1)
        x = self.final_layer.linear(modulate(x, shift, scale))
        side = LATENT_SIZE // PATCH
        x = x.reshape(-1, side, side, PATCH, PATCH, 2 * CHANNELS)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(-1, 2 * CHANNELS, LATENT_SIZE, LATENT_SIZE)


# fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture
def original_dit():
    torch.manual_seed(0)
    return OriginalDiT().eval()


@pytest.fixture
def original_checkpoint(tmp_path, original_dit):
    path = tmp_path / "DiT-tiny.pt"
    torch.save(original_dit.state_dict(), path)
    return path


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(1)
    return AutoencoderKL(**TINY_VAE).eval()


@pytest.fixture
def diffusers_dir(tmp_path):
    """A tiny model in the facebook/DiT-XL-2-256 layout: transformer/ and vae/, each config.json + safetensors."""
    torch.manual_seed(2)
    transformer = DiTDenoiser(**{k: v for k, v in TINY_LATENT_DIT.items() if k != "arch"}).transformer
    for parameter in transformer.parameters():  # diffusers zero-initialises the output layers
        nn.init.normal_(parameter, std=0.2)
    directory = tmp_path / "DiT-tiny"
    transformer.save_pretrained(directory / "transformer", safe_serialization=True)
    tiny_vae().save_pretrained(directory / "vae", safe_serialization=True)
    return directory


def random_inputs(batch=5):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, CHANNELS, LATENT_SIZE, LATENT_SIZE, generator=generator)
    t = torch.tensor([0, 1, 499, 500, 999])[:batch]
    y = torch.tensor([0, 3, 9, CLASSES, 5])[:batch]  # CLASSES is the null label
    return x, t, y


# conversion ---------------------------------------------------------------------------------------------------
def test_converted_original_checkpoint_is_the_same_function(original_dit, original_checkpoint):
    model = load_dit(TINY_LATENT_DIT, original_checkpoint).eval()  # eval: no random label dropout
    x, t, y = random_inputs()
    with torch.no_grad():
        expected = original_dit(x, t, y)
        torch.testing.assert_close(model(x, t, y), expected, rtol=1e-4, atol=1e-5)
        # diffusers' own timestep frequencies and LayerNorm eps are a different function (follow_original_dit)
        plain = DiTDenoiser(**{k: v for k, v in TINY_LATENT_DIT.items() if k != "arch"}).eval()
        plain.transformer.load_state_dict(convert_original_dit(original_dit.state_dict()))
        assert not torch.allclose(plain(x, t, y), expected, rtol=1e-3, atol=1e-3)


def test_conversion_keeps_every_tensor_and_reports_unknown_keys(original_dit):
    state = original_dit.state_dict()
    converted = convert_original_dit({**state, "extra.weight": torch.zeros(1)})
    assert "extra.weight" in converted and "pos_embed" not in converted
    q, k, v = (converted[f"transformer_blocks.1.attn1.to_{n}.weight"] for n in "qkv")
    assert torch.equal(torch.cat([q, k, v]), state["blocks.1.attn.qkv.weight"])
    for n in range(DEPTH):  # the shared class table, null row included, in every block
        assert torch.equal(
            converted[f"transformer_blocks.{n}.norm1.emb.class_embedder.embedding_table.weight"],
            state["y_embedder.embedding_table.weight"],
        )


def test_ema_wrapped_original_checkpoint_loads(tmp_path, original_dit):
    path = tmp_path / "wrapped.pt"
    torch.save({"ema": original_dit.state_dict()}, path)
    x, t, y = random_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            load_dit(TINY_LATENT_DIT, path).eval()(x, t, y), original_dit(x, t, y), rtol=1e-4, atol=1e-5
        )


# loading both forms -------------------------------------------------------------------------------------------
def test_diffusers_directory_loads_transformer_and_vae(diffusers_dir):
    model = load_dit(TINY_LATENT_DIT, diffusers_dir)
    for key, value in load_file(diffusers_dir / "transformer" / "diffusion_pytorch_model.safetensors").items():
        assert torch.equal(model.transformer.state_dict()[key], value), key
    assert vae_directory(diffusers_dir, None) == str(diffusers_dir / "vae")
    vae = load_vae(vae_directory(diffusers_dir, None))
    for key, value in load_file(diffusers_dir / "vae" / "diffusion_pytorch_model.safetensors").items():
        assert torch.equal(vae.state_dict()[key], value), key
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    assert vae_image_size(vae, LATENT_SIZE) == 2 * LATENT_SIZE


def test_original_checkpoint_with_separate_vae_directory(tmp_path, original_checkpoint):
    """The .pt form names its VAE explicitly; a VAE file of diffusers < 0.14 (query/key/value/proj_attn, .bin) loads."""
    vae = tiny_vae()
    legacy = {
        key.replace("to_q.", "query.")
        .replace("to_k.", "key.")
        .replace("to_v.", "value.")
        .replace("to_out.0.", "proj_attn."): value
        for key, value in vae.state_dict().items()
    }
    assert legacy.keys() != vae.state_dict().keys()
    directory = tmp_path / "sd-vae-ft-ema"
    vae.save_config(directory)
    torch.save(legacy, directory / "diffusion_pytorch_model.bin")
    assert vae_directory(original_checkpoint, None) is None
    assert vae_directory(original_checkpoint, directory) == str(directory)
    loaded = load_vae(directory)
    for key, value in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert isinstance(load_dit(TINY_LATENT_DIT, original_checkpoint), DiTDenoiser)


# latent sampling ----------------------------------------------------------------------------------------------
def test_latent_sampling_decodes_and_does_not_depend_on_the_shard_count(tmp_path, diffusers_dir):
    vae = vae_directory(diffusers_dir, None)

    def run(output, shard, shards):
        sample_job(
            str(tmp_path / output),
            TINY_LATENT_DIT,
            str(diffusers_dir),
            num_classes=3,
            images_per_class=2,
            respacing=3,
            batch_size=2,
            shard=shard,
            num_shards=shards,
            seed=0,
            device=torch.device("cpu"),
            vae=vae,
        )

    run("one.zarr", 0, 1)
    run("a.zarr", 0, 2)
    run("b.zarr", 1, 2)
    images, labels = StoreSequence([tmp_path / "one.zarr"]).read(0, 6)
    assert images.shape == (6, 2 * LATENT_SIZE, 2 * LATENT_SIZE, 3) and images.dtype == np.uint8
    assert images.std() > 0
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2])
    two = StoreSequence([tmp_path / "a.zarr", tmp_path / "b.zarr"]).read(0, 6)
    np.testing.assert_array_equal(images, two[0])
    np.testing.assert_array_equal(labels, two[1])


def test_latent_generator_without_vae_is_refused(tmp_path, diffusers_dir):
    with pytest.raises(ValueError, match="needs its VAE"):
        sample_job(
            str(tmp_path / "x.zarr"),
            TINY_LATENT_DIT,
            str(diffusers_dir),
            num_classes=3,
            images_per_class=1,
            respacing=2,
            batch_size=2,
            shard=0,
            num_shards=1,
            seed=0,
            device=torch.device("cpu"),
        )


# errors -------------------------------------------------------------------------------------------------------
def test_truncated_original_checkpoint_names_file_and_first_missing_keys(tmp_path, original_dit):
    path = tmp_path / "truncated.pt"
    torch.save({k: v for k, v in original_dit.state_dict().items() if not k.startswith("blocks.1.")}, path)
    with pytest.raises(CheckpointError, match=r"truncated\.pt.*missing \(\d+\): transformer_blocks\.1\."):
        load_dit(TINY_LATENT_DIT, path)


def test_checkpoint_of_another_size_is_refused(tmp_path, original_checkpoint):
    with pytest.raises(CheckpointError, match=r"DiT-tiny\.pt.*wrong shape"):
        load_dit({**TINY_LATENT_DIT, "attention_head_dim": 4, "num_attention_heads": 8 * 2}, original_checkpoint)
    with pytest.raises(CheckpointError, match=r"DiT-tiny\.pt has a position table of 16 patches.* give 64"):
        load_dit({**TINY_LATENT_DIT, "sample_size": 2 * LATENT_SIZE}, original_checkpoint)


def test_wrong_files_name_the_file(tmp_path, diffusers_dir, original_dit):
    with pytest.raises(CheckpointError, match=r"transformer/config\.json does not describe.*num_layers: 3"):
        load_dit({**TINY_LATENT_DIT, "num_layers": 3}, diffusers_dir)
    (diffusers_dir / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no weights file in .*transformer.*facebook/DiT-XL-2-256"):
        load_dit(TINY_LATENT_DIT, diffusers_dir)
    with pytest.raises(FileNotFoundError, match=r"VAE config not found: .*nowhere.*sd-vae-ft-ema"):
        load_vae(tmp_path / "nowhere")
    bad_vae = diffusers_dir / "vae" / "diffusion_pytorch_model.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(1)}, str(bad_vae))
    with pytest.raises(CheckpointError, match=r"vae/diffusion_pytorch_model\.safetensors does not fit"):
        load_vae(diffusers_dir / "vae")
    with pytest.raises(FileNotFoundError, match=r"absent\.pt.*dl\.fbaipublicfiles\.com"):
        load_dit(TINY_LATENT_DIT, tmp_path / "absent.pt")
