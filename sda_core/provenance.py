"""What produced a run's tables: the code (git commit, and whether the tree had local changes), the
package versions, the platform, the CPU and the configuration (its hash, and itself)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys


def config_hash(config: dict) -> str:
    """sha256 of the validated configuration, keys sorted: the same experiment gives the same hash."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_state(directory: str | os.PathLike) -> dict:
    """The commit checked out in `directory` and whether tracked files differ from it (None outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "note": "the workflow directory is not a git checkout"}
    return {"commit": commit, "dirty": dirty}


def cpu() -> dict:
    """The CPU model and the vector instruction set torch's CPU kernels use: trained models (and so the
    digits figures) are bitwise reproducible on the same one, not across them (float rounding)."""
    import torch

    model = None
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "model": model or platform.processor() or None,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "numerics": numeric_signature(),
    }


def numeric_signature() -> str:
    """A short hash of the bytes a fixed computation gives on this machine, one thread (as the embedded
    worlds' jobs run): the kernels the runs use (convolution, matrix products, normalisations, attention,
    the vectorised transcendental functions, a backward pass and an optimiser step, numpy's BLAS).

    Two machines with the same signature run these kernels to the same bits, so their runs are expected to
    give the same tables; different signatures (another CPU vendor or instruction set, another torch) give
    float rounding of their own, and so figures that differ in their last digits or more
    (tools/digits_readme.py checks such a run's figures structurally, not exactly).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            x = torch.randn(4, 3, 19, 19)
            conv = torch.nn.Conv2d(3, 16, 3, padding=1)
            norm = torch.nn.BatchNorm2d(16)
            attention = torch.nn.Linear(16, 48)
            head = torch.nn.Linear(16, 10)
            parameters = [*conv.parameters(), *norm.parameters(), *attention.parameters(), *head.parameters()]
            optimiser = torch.optim.AdamW(parameters, lr=1e-2)
            outputs = []
            for _ in range(2):
                h = F.silu(F.group_norm(conv(x), 4))
                h = F.gelu(norm(h))
                tokens = F.layer_norm(h.flatten(2).transpose(1, 2), (16,))
                q, k, v = attention(tokens).chunk(3, dim=-1)
                tokens = tokens + F.scaled_dot_product_attention(q, k, v)
                logits = head(tokens.mean(1))
                loss = F.cross_entropy(logits, torch.arange(4)) + F.interpolate(h, scale_factor=1.5).square().mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                outputs += [logits.detach(), loss.detach()]
            wide = torch.linspace(-8, 8, 4099)
            outputs += [p.detach() for p in parameters]
            outputs += [wide.exp(), wide.tanh(), wide.sigmoid(), wide.sin(), torch.log1p(wide.abs()), wide.cumsum(0)]
            outputs.append(torch.log_softmax(torch.outer(wide[:97], wide[:89]), dim=1))
        digest = hashlib.sha256()
        for tensor in outputs:
            digest.update(tensor.numpy().tobytes())
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            a, b = rng.standard_normal((67, 35)).astype(dtype), rng.standard_normal((35, 41)).astype(dtype)
            digest.update((a @ b).tobytes())
            digest.update(np.exp(a).tobytes())
        return digest.hexdigest()[:12]
    finally:
        torch.set_num_threads(threads)


def provenance(config: dict, code_directory: str | os.PathLike) -> dict:
    packages = {dist.metadata["Name"].lower(): dist.version for dist in importlib.metadata.distributions()}
    return {
        "code": git_state(code_directory),
        "config_sha256": config_hash(config),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu(),
        "packages": dict(sorted(packages.items())),
        "config": config,
    }


def write_provenance(output: str | os.PathLike, config: dict, code_directory: str | os.PathLike) -> None:
    with open(output, "w") as file:
        json.dump(provenance(config, code_directory), file, indent=1, sort_keys=False, default=str)
        file.write("\n")
