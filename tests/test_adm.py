"""Tests of the ADM UNet (sda_core.models.adm): structure vs. the official checkpoint, maths, loading."""

import math

import pytest
import torch

from sda_core.checkpoints import load_weights
from sda_core.models.adm import (
    AttentionBlock,
    QKVAttention,
    attention_downsample_rates,
    create_adm,
    mask_channels,
    timestep_embedding,
)
from sda_core.models.denoisers import load_denoiser
from sda_core.models.specs import resolve_spec

TINY = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    out_channels=6,
    num_res_blocks=1,
    attention_resolutions=(2,),
    channel_mult=(1, 2),
    num_head_channels=16,
    use_scale_shift_norm=True,
    resblock_updown=True,
)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replace every parameter (including the zero-initialised ones) by a random, well-scaled value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):  # GroupNorm gains
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return model


def tiny(seed: int | None = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(1234)
    model = create_adm(TINY, **overrides).eval()
    return randomize(model, seed) if seed is not None else model


def inputs(n: int = 2):
    gen = torch.Generator().manual_seed(7)
    return torch.randn(n, 3, 16, 16, generator=gen), torch.tensor([10, 500])[:n]


# 1. Official 256x256 unconditional config -------------------------------------------------------


def test_official_config_matches_checkpoint_layout():
    with torch.device("meta"):
        model = create_adm("adm-256-uncond")
    sd = model.state_dict()
    assert len(sd) == 566
    assert sum(p.numel() for p in model.parameters()) == 552_814_086

    # Expected names/shapes worked out from guided-diffusion's UNetModel with channel_mult
    # (1,1,2,2,4,4), 2 res blocks, resblock_updown, scale-shift norm, 64-channel heads at ds 8/16/32:
    # input_blocks: 0 conv | 1,2 (256) | 3 down | 4,5 | 6 down | 7,8 (512) | 9 down | 10,11 (+attn)
    # | 12 down | 13,14 (1024, +attn) | 15 down | 16,17 (+attn).
    expected = {
        "time_embed.0.weight": (1024, 256),
        "time_embed.2.weight": (1024, 1024),
        "input_blocks.0.0.weight": (256, 3, 3, 3),
        "input_blocks.1.0.in_layers.0.weight": (256,),
        "input_blocks.1.0.emb_layers.1.weight": (512, 1024),  # 2 * out_channels for scale/shift
        "input_blocks.1.0.out_layers.3.weight": (256, 256, 3, 3),
        "input_blocks.7.0.skip_connection.weight": (512, 256, 1, 1),
        "input_blocks.10.1.norm.weight": (512,),
        "input_blocks.10.1.qkv.weight": (1536, 512, 1),
        "input_blocks.10.1.proj_out.weight": (512, 512, 1),
        "input_blocks.13.0.emb_layers.1.weight": (2048, 1024),
        "middle_block.1.qkv.weight": (3072, 1024, 1),
        "middle_block.2.out_layers.3.weight": (1024, 1024, 3, 3),
        "output_blocks.0.0.in_layers.0.weight": (2048,),
        "output_blocks.0.0.skip_connection.weight": (1024, 2048, 1, 1),
        "output_blocks.2.2.in_layers.2.weight": (1024, 1024, 3, 3),  # upsampling ResBlock
        "output_blocks.6.0.in_layers.0.weight": (1536,),
        "output_blocks.8.1.qkv.weight": (1536, 512, 1),
        "output_blocks.17.0.skip_connection.weight": (256, 512, 1, 1),
        "out.0.weight": (256,),
        "out.2.weight": (6, 256, 3, 3),
        "out.2.bias": (6,),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name

    # A resblock_updown downsample: avg-pool h_upd/x_upd have no parameters, no skip conv, no `op`.
    block3 = sorted(k[len("input_blocks.3.0.") :] for k in sd if k.startswith("input_blocks.3."))
    assert block3 == sorted(
        f"{layer}.{p}"
        for layer in ("in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3")
        for p in ("weight", "bias")
    )
    assert not any("label_emb" in k or ".op." in k or "_upd" in k for k in sd)
    assert model.middle_block[1].num_heads == 16 and model.input_blocks[10][1].num_heads == 8


def test_attention_downsample_rates():
    assert attention_downsample_rates(256, "32,16,8") == (8, 16, 32)
    assert attention_downsample_rates(64, [16]) == (4,)
    assert attention_downsample_rates(64, 8) == (8,)
    assert attention_downsample_rates(256, resolve_spec("adm-256-uncond")["attention_resolutions"]) == (8, 16, 32)
    with pytest.raises(ValueError):
        attention_downsample_rates(256, "30")


def test_timestep_embedding_formula():
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = timestep_embedding(t, 8)
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    ref = torch.tensor([[math.cos(s * f) for f in freqs] + [math.sin(s * f) for f in freqs] for s in t.tolist()])
    torch.testing.assert_close(emb, ref, rtol=1e-5, atol=1e-5)


# 2. Tiny configs --------------------------------------------------------------------------------


def test_tiny_forward_shape_determinism_and_timestep_dependence():
    model = tiny()
    x, t = inputs()
    with torch.no_grad():
        out1, out2 = model(x, t), model(x, t)
        other_t = model(x, t + 100)
        scalar_t = model(x, torch.tensor(10))
    assert out1.shape == (2, 6, 16, 16)
    assert torch.isfinite(out1).all()
    assert torch.equal(out1, out2)
    assert not torch.allclose(out1, other_t)
    torch.testing.assert_close(scalar_t[0], out1[0])
    with pytest.raises(AssertionError):
        model(x, t, y=torch.tensor([0, 1]))


def test_tiny_class_conditional_depends_on_label():
    model = tiny(num_classes=10)
    assert model.state_dict()["label_emb.weight"].shape == (10, 128)
    x, t = inputs()
    with torch.no_grad():
        out_a = model(x, t, y=torch.tensor([0, 1]))
        out_b = model(x, t, y=torch.tensor([3, 1]))
    assert out_a.shape == (2, 6, 16, 16) and torch.isfinite(out_a).all()
    assert not torch.allclose(out_a[0], out_b[0])
    torch.testing.assert_close(out_a[1], out_b[1])
    with pytest.raises(AssertionError):
        model(x, t)


def test_tiny_mask_conditional_depends_on_the_map_where_it_changes():
    """A label map's one-hot channels join the input: only the first convolution grows, and a change of
    the map in one image changes that image's output only."""
    model = tiny(mask_classes=11)
    assert model.state_dict()["input_blocks.0.0.weight"].shape == (32, 3 + 11, 3, 3)
    assert "label_emb.weight" not in model.state_dict()
    x, t = inputs()
    maps = torch.zeros(2, 16, 16, dtype=torch.uint8)
    changed = maps.clone()
    changed[0, 4:8, 4:8] = 7
    with torch.no_grad():
        out_a, out_b = model(x, t, y=maps), model(x, t, y=changed)
        ignored = model(x, t, y=torch.full_like(maps, 255))  # no label: no channel set
    assert out_a.shape == (2, 6, 16, 16)
    assert not torch.allclose(out_a[0], out_b[0])
    torch.testing.assert_close(out_a[1], out_b[1])
    assert not torch.allclose(out_a, ignored)
    one_hot = mask_channels(torch.tensor([[[0, 10], [255, 3]]]), 11)
    assert one_hot.shape == (1, 11, 2, 2) and one_hot.sum(1).tolist() == [[[1, 1], [0, 1]]]
    assert one_hot[0, 10, 0, 1] == 1 and one_hot[0, 3, 1, 1] == 1
    with pytest.raises(AssertionError, match="label maps"):
        model(x, t, y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="not both"):
        tiny(mask_classes=11, num_classes=10)


def test_tiny_without_updown_or_scale_shift():
    model = tiny(resblock_updown=False, use_scale_shift_norm=False, num_head_channels=-1, num_heads=2)
    assert "input_blocks.2.0.op.weight" in model.state_dict()
    assert "output_blocks.1.2.conv.weight" in model.state_dict()
    x, t = inputs()
    with torch.no_grad():
        out = model(x, t)
    assert out.shape == (2, 6, 16, 16) and torch.isfinite(out).all()


# 3. Zero-initialised output ---------------------------------------------------------------------


def test_fresh_model_outputs_zeros_until_perturbed():
    model = tiny(seed=None)
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t), torch.zeros(2, 6, 16, 16))
        torch.nn.init.normal_(model.out[2].weight, std=0.1)
        assert model(x, t).abs().max() > 0


# 4. Attention -----------------------------------------------------------------------------------


def reference_attention(q, k, v):
    """guided-diffusion's formula on (B*H, C, T) tensors."""
    scale = 1 / math.sqrt(math.sqrt(q.shape[1]))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale).softmax(dim=-1)
    return torch.einsum("bts,bcs->bct", weight, v)


@pytest.mark.parametrize("heads", [1, 3])
def test_qkv_attention_matches_reference_einsum(heads):
    bs, ch, length = 2, 8, 20
    qkv = torch.randn(bs, 3 * heads * ch, length, generator=torch.Generator().manual_seed(heads))

    q, k, v = qkv.reshape(bs * heads, 3 * ch, length).split(ch, dim=1)  # heads first (legacy)
    legacy = reference_attention(q, k, v).reshape(bs, -1, length)
    torch.testing.assert_close(QKVAttention(heads, legacy_order=True)(qkv), legacy, rtol=1e-5, atol=1e-5)

    q, k, v = (t.reshape(bs * heads, ch, length) for t in qkv.chunk(3, dim=1))  # q/k/v first (new)
    new = reference_attention(q, k, v).reshape(bs, -1, length)
    torch.testing.assert_close(QKVAttention(heads, legacy_order=False)(qkv), new, rtol=1e-5, atol=1e-5)
    if heads > 1:
        assert not torch.allclose(legacy, new)


def test_attention_block_head_count():
    assert AttentionBlock(128, num_head_channels=64).num_heads == 2
    assert AttentionBlock(128, num_heads=4).num_heads == 4
    assert AttentionBlock(64).attention.legacy_order
    assert not AttentionBlock(64, use_new_attention_order=True).attention.legacy_order


# 5. Loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_state_dict_round_trip(tmp_path, suffix):
    source = tiny(seed=3)
    path = tmp_path / f"adm{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)

    target = load_weights(tiny(seed=None), path)
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(target(x, t), source(x, t))


def test_missing_checkpoint_names_path_and_origin(tmp_path):
    path = tmp_path / "nowhere" / "256x256_diffusion_uncond.pt"
    with pytest.raises(FileNotFoundError) as info:
        load_denoiser({"arch": "adm", **TINY}, path)  # how the jobs load a denoiser
    assert str(path) in str(info.value) and "openai/guided-diffusion" in str(info.value)


def test_mismatched_state_dict_names_keys(tmp_path):
    model = tiny(seed=None)
    state = dict(model.state_dict())
    del state["input_blocks.1.0.emb_layers.1.weight"]
    state["out.2.weight"] = torch.zeros(3, 32, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        load_weights(model, path)
    msg = str(info.value)
    for needle in (str(path), "input_blocks.1.0.emb_layers.1.weight", "out.2.weight", "extra.weight", "missing (1)"):
        assert needle in msg


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_checkpoint_raises_value_error(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    state = tiny(seed=None).state_dict()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(full))
    else:
        torch.save(state, full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ValueError) as info:
        load_weights(tiny(seed=None), cut)
    assert str(cut) in str(info.value)


# 6. bf16 autocast -------------------------------------------------------------------------------


def test_bf16_autocast_close_to_fp32():
    model = tiny(seed=5)
    x, t = inputs()
    with torch.no_grad():
        ref = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, t)
    assert torch.isfinite(low).all()
    rel = (low.float() - ref).abs().max() / ref.abs().max()
    assert rel < 0.05, rel
