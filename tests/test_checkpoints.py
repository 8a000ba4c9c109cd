import hashlib
import json
import struct

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from sda_core.checkpoints import save_weights


def test_saved_weights_are_the_same_bytes_whatever_the_metadata_order(tmp_path):
    """safetensors writes its metadata from a hash map, in an order that changes from call to call; a
    resumed job must write the same bytes as the uninterrupted one (tools/fault_injection.py compares them)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    metadata = {f"key{i}": f"value{i}" for i in range(6)}
    digests = set()
    for attempt in range(8):
        path = tmp_path / f"w{attempt}.safetensors"
        save_weights(model, path, metadata=dict(reversed(metadata.items())) if attempt % 2 else metadata)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    with safe_open(str(path), "pt") as opened:
        assert opened.metadata() == metadata
    loaded = load_file(str(path))
    assert torch.equal(loaded["weight"], model.weight.detach()) and torch.equal(loaded["bias"], model.bias.detach())
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert header_length % 8 == 0  # the format's alignment of the data section
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    assert list(header["__metadata__"]) == sorted(metadata)
