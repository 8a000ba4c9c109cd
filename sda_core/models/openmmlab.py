"""OpenMMLab classification checkpoints (mmcls 0.x, MMPreTrain 1.x) read safely and converted to timm.

The paper's source models are mmcls v0 release files and its fine-tuned models were written by
MMPreTrain 1.x: a dict with `state_dict` (keys under `backbone.`, `neck.`, `head.`) and `meta`. This
module maps them onto the timm model of the same architecture, one family at a time, by reading both
libraries' implementations side by side (docs/openmmlab.md):

- ResNet: the same modules under the same names (mmcls names its norms bn1..bn3 as torchvision does).
- Swin: mmcls's patch merging gathers each 2x2 neighbourhood with nn.Unfold, so its 4C input channels
  are ordered (channel, row, column); timm concatenates the four neighbours, (column, row, channel).
  The merge's norm and linear input are permuted accordingly. It also ends stage i in mmcls and begins
  stage i + 1 in timm. Relative-position indices and attention masks are buffers that both libraries
  rebuild: they are checked (the index) or dropped (the masks), never loaded as weights. The final norm
  is `norm3` since mmcls 0.20 and `norm` in older files.
- ConvNeXt: `downsample_layers[0]` is timm's stem, `downsample_layers[i]` the start of stage i; the
  layer scale is `gamma` in both; the final norm (after pooling in both) is timm's `head.norm`.
  MMPreTrain 1.x and timm use eps 1e-6 in every LayerNorm; mmcls 0.x used 1e-5 in the three
  downsampling LayerNorms (docs/openmmlab.md gives the measured effect).

Every key is accounted for: a key left over, missing or of the wrong shape is an error naming it and
the architecture the file seems to be.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from sda_core.checkpoints import CheckpointError, key_mismatch, listed_keys

PREFIXES = ("backbone.", "neck.", "head.")


class _Inert:
    """Stands in for an object the safe loader refuses (an mmengine log buffer, a numpy scalar in `meta`):
    built from its pickled state without running any of its class's code, then thrown away."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The top-level dict of a torch.save file, read with the weights-only unpickler.

    Objects outside its allow-list (outside `state_dict`, e.g. a training log in `meta`) are read as inert
    placeholders, never as their classes; a placeholder inside the state dict is refused, naming it.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the weights-only unpickler's refusal names the global
        refused = error
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {refused}") from error
    if not unsafe:
        raise CheckpointError(f"cannot read checkpoint {path}: {refused}") from refused
    with torch.serialization.safe_globals([(_Inert, name) for name in unsafe]):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if isinstance(state, dict):
        objects = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if objects:
            raise CheckpointError(
                f"{path}: state_dict entries {', '.join(objects[:5])} are objects ({', '.join(unsafe)}), not "
                "tensors; they are not unpickled"
            )
    return checkpoint


def is_openmmlab(checkpoint) -> bool:
    """Whether a checkpoint is in the OpenMMLab layout: a dict whose `state_dict` has only
    backbone./neck./head. keys (timm's and the original releases' names have none of these roots)."""
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    return isinstance(state, dict) and bool(state) and all(k.startswith(PREFIXES) for k in state)


def openmmlab_family(state: dict) -> str:
    """The architecture family an OpenMMLab state dict seems to be, from its backbone's keys."""
    if "backbone.layer1.0.conv1.weight" in state:
        return "resnet"
    if "backbone.patch_embed.projection.weight" in state and any(".blocks.0.attn.w_msa." in k for k in state):
        return "swin"
    if "backbone.downsample_layers.0.0.weight" in state:
        return "convnext"
    return "unknown"


FAMILY_NAMES = {"resnet": "ResNet", "swin": "Swin Transformer", "convnext": "ConvNeXt", "unknown": "unknown"}


def timm_family(model: nn.Module) -> str:
    """The family of a timm classifier, by its class (the families the converter knows)."""
    return {"ResNet": "resnet", "SwinTransformer": "swin", "ConvNeXt": "convnext"}.get(type(model).__name__, "")


def _resnet_key(key: str) -> str | None:
    """mmcls ResNet: torchvision's names under backbone., the classifier at head.fc."""
    if key.startswith("backbone."):
        return key[len("backbone.") :]
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc.") :]
    return None


_SWIN_BLOCK = {
    "attn.w_msa.qkv": "attn.qkv",
    "attn.w_msa.proj": "attn.proj",
    "attn.w_msa.relative_position_bias_table": "attn.relative_position_bias_table",
    "ffn.layers.0.0": "mlp.fc1",
    "ffn.layers.1": "mlp.fc2",
    "norm1": "norm1",
    "norm2": "norm2",
}


def _swin_key(key: str, final_norm: str) -> str | None:
    if key.startswith("backbone.patch_embed."):
        return key.replace("backbone.patch_embed.projection.", "patch_embed.proj.").replace("backbone.", "", 1)
    if key.startswith(f"backbone.{final_norm}."):
        return "norm." + key[len(f"backbone.{final_norm}.") :]
    if key.startswith("head.fc."):
        return key
    match = re.fullmatch(
        r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)\.(weight|bias|relative_position_bias_table)", key
    )
    if match:
        stage, block, module, leaf = match.groups()
        if leaf == "relative_position_bias_table":
            module, leaf = f"{module}.{leaf}", ""
        if module in _SWIN_BLOCK:
            return f"layers.{stage}.blocks.{block}.{_SWIN_BLOCK[module]}" + (f".{leaf}" if leaf else "")
        return None
    match = re.fullmatch(r"backbone\.stages\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)", key)
    if match:  # the merge ending stage i begins stage i + 1 in timm
        stage, module, leaf = match.groups()
        return f"layers.{int(stage) + 1}.downsample.{module}.{leaf}"
    return None


def unfold_to_concat(channels: int) -> torch.Tensor:
    """For each of timm's 4C merged channels (column, row, channel), the index of the same value in
    mmcls's nn.Unfold order (channel, row, column): timm_tensor = mmcls_tensor[..., index]."""
    column, row, channel = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(channels), indexing="ij")
    return (channel * 4 + row * 2 + column).reshape(-1)


_CONVNEXT_BLOCK = {
    "depthwise_conv": "conv_dw",
    "norm": "norm",
    "pointwise_conv1": "mlp.fc1",
    "pointwise_conv2": "mlp.fc2",
}


def _convnext_key(key: str, final_norm: str) -> str | None:
    if key.startswith("head.fc."):
        return key
    if key.startswith(f"backbone.{final_norm}."):
        return "head.norm." + key[len(f"backbone.{final_norm}.") :]
    match = re.fullmatch(r"backbone\.downsample_layers\.(\d+)\.([01])\.(weight|bias)", key)
    if match:
        stage, index, leaf = match.groups()
        return f"stem.{index}.{leaf}" if stage == "0" else f"stages.{stage}.downsample.{index}.{leaf}"
    match = re.fullmatch(r"backbone\.stages\.(\d+)\.(\d+)\.gamma", key)
    if match:
        return f"stages.{match[1]}.blocks.{match[2]}.gamma"
    match = re.fullmatch(r"backbone\.stages\.(\d+)\.(\d+)\.(\w+)\.(weight|bias)", key)
    if match and match[3] in _CONVNEXT_BLOCK:
        return f"stages.{match[1]}.blocks.{match[2]}.{_CONVNEXT_BLOCK[match[3]]}.{match[4]}"
    return None


def _final_norm(state: dict, path) -> str:
    """`norm3` (mmcls 0.20 and later, MMPreTrain) or `norm` (older releases), never both."""
    names = {k.split(".")[1] for k in state if re.fullmatch(r"backbone\.norm\d?\.(weight|bias)", k)}
    if len(names) > 1:
        raise CheckpointError(f"{path}: both {' and '.join(sorted(names))} look like the final norm")
    return names.pop() if names else "norm3"


def _rebuilt_buffers(state: dict, model: nn.Module, path, family: str) -> list[str]:
    """The buffers a file stores that timm rebuilds: Swin's relative-position indices (checked equal to
    timm's, which a different convention would not be) and attention masks (dropped)."""
    if family != "swin":
        return []
    rebuilt = []
    buffers = dict(model.named_buffers())
    for key, value in state.items():
        if key.endswith("attn_mask"):
            rebuilt.append(key)
        elif key.endswith("relative_position_index"):
            match = re.fullmatch(r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.relative_position_index", key)
            ours = buffers.get(f"layers.{match[1]}.blocks.{match[2]}.attn.relative_position_index") if match else None
            if ours is None:
                raise CheckpointError(f"{path}: {key} has no counterpart in timm's model to be checked against")
            if not torch.equal(value.to(ours.dtype), ours):
                raise CheckpointError(
                    f"{path}: {key} is not the relative-position index timm builds; the file follows another "
                    "convention and would not load exactly"
                )
            rebuilt.append(key)
    return rebuilt


def openmmlab_to_timm(state: dict[str, torch.Tensor], model: nn.Module, path: str | os.PathLike) -> dict:
    """The timm state dict of `model` holding the weights of an OpenMMLab classification state dict.

    Raises CheckpointError naming every key left over, missing or of the wrong shape, with the family
    the file seems to be.
    """
    family, seems = timm_family(model), openmmlab_family(state)
    if not family:
        raise CheckpointError(
            f"{path}: OpenMMLab checkpoints convert to timm's ResNet, SwinTransformer or ConvNeXt; "
            f"this architecture is a {type(model).__name__}"
        )
    if seems != family:
        raise CheckpointError(
            f"{path} seems to be a {FAMILY_NAMES[seems]} in the OpenMMLab layout, the architecture is timm's "
            f"{type(model).__name__}"
        )
    rebuilt = set(_rebuilt_buffers(state, model, path, family))
    final_norm = _final_norm(state, path)
    rename = {
        "resnet": _resnet_key,
        "swin": lambda k: _swin_key(k, final_norm),
        "convnext": lambda k: _convnext_key(k, final_norm),
    }[family]
    converted, left_over = {}, []
    for key, value in state.items():
        if key in rebuilt:
            continue
        target = rename(key)
        if target is None:
            left_over.append(key)
        else:
            converted[target] = value
    if family == "swin":
        for key, value in list(converted.items()):
            if ".downsample." in key:  # (4C,) norm and (out, 4C) linear: the input channels are permuted
                converted[key] = value[..., unfold_to_concat(value.shape[-1] // 4)].contiguous()
    mismatch = key_mismatch(converted, model.state_dict())
    left_over += mismatch.pop("unexpected")  # keys the mapping does not know, then those timm lacks
    if left_over or any(mismatch.values()):
        raise CheckpointError(
            f"{path} (OpenMMLab layout; seems to be a {FAMILY_NAMES[seems]}) does not fit timm's "
            f"{type(model).__name__}: " + listed_keys({"left over": left_over, **mismatch})
        )
    return converted
