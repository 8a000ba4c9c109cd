"""`snakemake --lint` of the shipped configurations, in a temporary copy of the workflow: the digits and
digit-scenes presets as they are, config.yaml (ImageNet) over a placeholder tree of its inputs. Exits 1 on
any finding."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from workflow_copy import SNAKEMAKE, copy_workflow, imagenet_placeholders  # noqa: E402

CLEAN = "Congratulations, your workflow is in a good condition!"


def lint(workdir: Path, *args: str, env: dict | None = None) -> bool:
    result = subprocess.run(
        [SNAKEMAKE, "--lint", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    output = result.stdout + result.stderr
    ok = result.returncode == 0 and CLEAN in output
    print(f"snakemake --lint {' '.join(args) or '(config.yaml)'}: {'clean' if ok else 'FINDINGS'}")
    if not ok:
        print(output)
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = copy_workflow(Path(tmp))
        hub_cache = imagenet_placeholders(workdir)
        results = [
            lint(workdir, "--configfile", "presets/digits.yaml"),
            lint(workdir, "--configfile", "presets/digit_scenes.yaml"),
            lint(workdir, env={"HF_HUB_CACHE": str(hub_cache)}),
        ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
