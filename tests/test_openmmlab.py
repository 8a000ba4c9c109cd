"""OpenMMLab checkpoints into timm without mmcls: the patch-merge order, a round trip, every error, safe loading.

mmcls itself is the reference in tests/test_openmmlab_reference.py (the five paper architectures, their
logits); these tests need no second environment.
"""

import re

import pytest
import timm
import torch
from torch.nn import functional as F

from sda_core.checkpoints import CheckpointError
from sda_core.models.classifiers import load_classifier
from sda_core.models.openmmlab import unfold_to_concat

TINY = {  # timm's architectures at toy sizes: the same modules and key names as the paper's
    "resnet50": {"layers": (1, 1, 1, 1)},
    "swin_tiny_patch4_window7_224": {
        "embed_dim": 8,
        "depths": (2, 2),
        "num_heads": (1, 2),
        "img_size": 32,
        "window_size": 4,
    },
    "convnext_tiny": {"depths": (1, 2, 1, 1), "dims": (8, 16, 24, 32)},
}


def tiny(timm_name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(timm_name, pretrained=False, num_classes=5, **TINY[timm_name]).eval()
    with torch.no_grad():  # no identity norms or layer scales for a wrong mapping to hide behind
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and ("norm" in name or "bn" in name or "gamma" in name):
                tensor.add_(0.3 * torch.rand(tensor.shape))
    return model


def openmmlab_layout(timm_name: str, state: dict) -> dict:
    """A timm state dict written back in mmcls's names, from mmcls's module structure (the inverse mapping,
    written here independently of sda_core.models.openmmlab)."""
    out = {}
    for key, value in state.items():
        if timm_name.startswith("resnet"):
            out[key.replace("fc.", "head.fc.", 1) if key.startswith("fc.") else f"backbone.{key}"] = value
        elif timm_name.startswith("swin"):
            if key.startswith("head."):
                out[key] = value
                continue
            key = re.sub(r"^patch_embed\.proj\.", "patch_embed.projection.", key)
            key = re.sub(r"^norm\.", "norm1.", key)  # 2 stages: mmcls's final norm is norm1
            key = re.sub(r"\.attn\.(qkv|proj|relative_position_bias_table)", r".attn.w_msa.\1", key)
            key = key.replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
            match = re.fullmatch(r"layers\.(\d+)\.downsample\.(.+)", key)
            if match:  # nn.Unfold's (channel, row, column) order from timm's (column, row, channel)
                key = f"stages.{int(match[1]) - 1}.downsample.{match[2]}"
                value = value[..., torch.argsort(unfold_to_concat(value.shape[-1] // 4))]
            out["backbone." + key.replace("layers.", "stages.", 1)] = value
        else:
            key = re.sub(r"^stem\.", "downsample_layers.0.", key)
            key = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", key)
            key = re.sub(r"^stages\.(\d+)\.blocks\.", r"stages.\1.", key)
            key = key.replace(".conv_dw.", ".depthwise_conv.").replace(".mlp.fc1.", ".pointwise_conv1.")
            key = key.replace(".mlp.fc2.", ".pointwise_conv2.").replace("head.norm.", "norm3.")
            out[key if key.startswith("head.") else f"backbone.{key}"] = value
    return out


def test_the_merge_permutation_takes_unfold_order_to_timms_concatenation():
    """mmcls gathers each 2x2 neighbourhood with nn.Unfold; timm's PatchMerging (its own module, with an
    identity reduction) concatenates them: the permutation must take one to the other."""
    from timm.models.swin_transformer import PatchMerging

    channels = 3
    x = torch.randn(2, 4, 6, channels)  # (B, H, W, C), timm's layout
    merge = PatchMerging(channels, out_dim=4 * channels)
    merge.norm = torch.nn.Identity()
    with torch.no_grad():
        merge.reduction.weight.copy_(torch.eye(4 * channels))
        timm_order = merge(x)  # (B, H/2, W/2, 4C)
    unfolded = F.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2)  # (B, 4C, L), mmcls's sampler
    mmcls_order = unfolded.transpose(1, 2).reshape(2, 2, 3, 4 * channels)
    assert torch.equal(mmcls_order[..., unfold_to_concat(channels)], timm_order)
    assert not torch.equal(mmcls_order, timm_order)


@pytest.mark.parametrize("timm_name", list(TINY))
def test_a_file_in_the_openmmlab_layout_loads_into_the_same_timm_model(tmp_path, timm_name):
    model = tiny(timm_name)
    path = tmp_path / "model.pth"
    meta = {"mmcls_version": "0.25.0", "CLASSES": ["a", "b", "c", "d", "e"], "epoch": 100}
    torch.save({"meta": meta, "state_dict": openmmlab_layout(timm_name, model.state_dict())}, path)
    loaded = load_classifier(timm_name, 5, TINY[timm_name], path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for declared in ("auto", "openmmlab"):
        load_classifier(timm_name, 5, TINY[timm_name], path, weights_format=declared)


def test_a_key_left_over_missing_or_misshapen_is_named_with_the_family_the_file_seems_to_be(tmp_path):
    name = "swin_tiny_patch4_window7_224"
    state = openmmlab_layout(name, tiny(name).state_dict())
    cases = {
        "left over (1): backbone.stages.0.blocks.0.attn.w_msa.scale": {
            **state,
            "backbone.stages.0.blocks.0.attn.w_msa.scale": torch.ones(1),
        },
        "missing (2): layers.1.downsample.norm.weight, layers.1.downsample.norm.bias": {
            k: v for k, v in state.items() if "downsample.norm" not in k
        },
        "wrong shape (1): head.fc.weight (7, 16) != (5, 16)": {**state, "head.fc.weight": torch.zeros(7, 16)},
    }
    for needle, broken in cases.items():
        torch.save({"state_dict": broken}, tmp_path / "broken.pth")
        with pytest.raises(CheckpointError, match="seems to be a Swin Transformer") as error:
            load_classifier(name, 5, TINY[name], tmp_path / "broken.pth")
        assert needle in str(error.value)
    torch.save({"state_dict": state}, tmp_path / "swin.pth")
    with pytest.raises(CheckpointError, match="seems to be a Swin Transformer in the OpenMMLab layout, the archi"):
        load_classifier("convnext_tiny", 5, TINY["convnext_tiny"], tmp_path / "swin.pth")


def test_stored_relative_position_indices_are_checked_not_loaded(tmp_path):
    """mmcls stores each Swin block's index buffer; timm builds its own: equal ones load, another is refused."""
    name = "swin_tiny_patch4_window7_224"
    model = tiny(name)
    state = openmmlab_layout(name, model.state_dict())
    indices = {
        key.replace("layers.", "backbone.stages.", 1).replace(".attn.", ".attn.w_msa."): buffer
        for key, buffer in model.named_buffers()
        if key.endswith("relative_position_index")
    }
    assert len(indices) == 4  # 2 stages of 2 blocks
    torch.save({"state_dict": {**state, **indices}}, tmp_path / "indexed.pth")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_classifier(name, 5, TINY[name], tmp_path / "indexed.pth").eval()(x), model(x))
    first = next(iter(indices))
    other = {**indices, first: indices[first].flip(0)}
    torch.save({"state_dict": {**state, **other}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=f"{first} is not the relative-position index timm builds"):
        load_classifier(name, 5, TINY[name], tmp_path / "other.pth")


def test_a_declared_format_the_file_does_not_have_is_refused(tmp_path):
    name = "convnext_tiny"
    model = tiny(name)
    torch.save({"state_dict": openmmlab_layout(name, model.state_dict())}, tmp_path / "openmmlab.pth")
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    with pytest.raises(CheckpointError, match="weights_format is timm, but the file is in the OpenMMLab layout"):
        load_classifier(name, 5, TINY[name], tmp_path / "openmmlab.pth", weights_format="timm")
    with pytest.raises(CheckpointError, match="weights_format is openmmlab, but the file has no state_dict"):
        load_classifier(name, 5, TINY[name], tmp_path / "timm.pth", weights_format="openmmlab")
    load_classifier(name, 5, TINY[name], tmp_path / "timm.pth", weights_format="timm")  # as before


class TrainingLog:
    """An object a training framework leaves in `meta` (mmengine's log buffers): the safe loader refuses its
    class, and loading must never run its code."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        open(state["marker"], "w").close()  # noqa: SIM115 (would prove the class was run)


def test_objects_outside_the_state_dict_are_read_inert_and_inside_it_refused(tmp_path):
    name = "convnext_tiny"
    model = tiny(name)
    marker = tmp_path / "ran"
    state = openmmlab_layout(name, model.state_dict())
    torch.save({"meta": {"log": TrainingLog(str(marker))}, "state_dict": state}, tmp_path / "released.pth")
    with pytest.raises(Exception, match="weights_only"):
        torch.load(tmp_path / "released.pth", weights_only=True)  # what the file is
    loaded = load_classifier(name, 5, TINY[name], tmp_path / "released.pth").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not marker.exists()
    torch.save({"state_dict": {**state, "backbone.extra": TrainingLog(str(marker))}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="state_dict entries backbone.extra are objects"):
        load_classifier(name, 5, TINY[name], tmp_path / "bad.pth")
    assert not marker.exists()
