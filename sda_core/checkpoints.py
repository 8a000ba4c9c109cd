"""Safe checkpoint I/O: safetensors, or torch.load with weights_only=True; clear errors on mismatch."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn


class CheckpointError(ValueError):
    pass


def read_state_dict(path: str | os.PathLike, how_to_obtain: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or of a plain state dict saved with torch.save (never unpickles objects)."""
    path = Path(path)
    if not path.is_file():
        hint = f" {how_to_obtain}" if how_to_obtain else ""
        raise FileNotFoundError(f"checkpoint not found: {path}.{hint}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    return unwrapped_state_dict(state, path)


def unwrapped_state_dict(state, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a torch.save checkpoint, out of the wrappers releases put them in."""
    # {"state_dict": ...} (Lightning); {"ema": ...} (DiT, whose EMA weights are the ones sampled from), before
    # {"model": ...} (Swin, ConvNeXt; DiT's raw weights)
    for wrapper in ("state_dict", "ema", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """The keys of floating-point tensors holding a NaN or Inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_weights(model: nn.Module, path: str | os.PathLike, how_to_obtain: str = "") -> nn.Module:
    """Load a checkpoint into `model` strictly; a mismatch names the file and the first offending keys."""
    return load_state(model, read_state_dict(path, how_to_obtain), path)


def key_mismatch(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """The keys of `state` that do not fit a model's state dict `expected`: missing, unexpected, wrong shape."""
    return {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "wrong shape": [
            f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ],
    }


def listed_keys(groups: dict[str, list[str]]) -> str:
    """ "name (n): k1, k2 ..." for each non-empty group (the first five keys), joined by "; "."""
    return "; ".join(
        f"{name} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for name, keys in groups.items()
        if keys
    )


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> nn.Module:
    """Load tensors read from `path` into `model` strictly, with load_weights' error on a mismatch."""
    expected = model.state_dict()
    mismatch = key_mismatch(state, expected)
    if any(mismatch.values()):
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__} "
            f"({len(state)} keys in file, {len(expected)} in model); " + listed_keys(mismatch)
        )
    broken = non_finite_tensors(state)
    if broken:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or Inf in {len(broken)} tensor(s): {', '.join(broken[:5])}"
            f"{' ...' if len(broken) > 5 else ''} (a diverged training run, or a damaged file)"
        )
    model.load_state_dict(state)
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict as safetensors, atomically (a killed job leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(
            f"refusing to save {path}: NaN or Inf in {len(broken)} tensor(s): {', '.join(broken[:5])}"
        )
    data = memoryview(save(state, metadata=metadata))
    header, tensors = sorted_metadata_header(data)
    with open(tmp, "wb") as file:
        file.write(header)
        file.write(tensors)  # a view: a large model is not copied again
    os.replace(tmp, path)


def sorted_metadata_header(data: memoryview) -> tuple[bytes, memoryview]:
    """A safetensors file's header (its length, then its JSON) with the metadata keys in sorted order,
    and the view of its tensors. safetensors writes the metadata from a hash map, in an order that
    changes from call to call, so the same weights would not otherwise be the same bytes.

    The file is an 8-byte little-endian header length, the JSON header (padded with spaces to a multiple
    of 8), then the tensors, whose offsets count from the end of the header."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(bytes(data[8 : 8 + length]))
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()  # raw UTF-8, as safetensors
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, data[8 + length :]
