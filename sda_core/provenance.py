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
    return {"model": model or platform.processor() or None, "torch_capability": torch.backends.cpu.get_cpu_capability()}


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
