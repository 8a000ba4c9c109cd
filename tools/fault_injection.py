"""Fault injection on the tiny digits world (tests/config/tiny_digits.yaml), compared byte for byte.

1. An uninterrupted run: the reference outputs.
2. Kills: the same run, SIGKILLed (the whole process group, jobs included) while a job of each stage
   runs, at a random moment of it, each time recovered with the documented command (`snakemake
   --unlock`, then the same command); the jobs running at each kill are recorded.
3. A full disk (results/ on a small tmpfs; root only): filled once while adaptation runs and once
   while fine-tuning runs; the run must fail, and the same command must finish once space is freed.

Every final output (tables, stores, checkpoints, predictions, plots; not logs and benchmarks) must be
byte-identical to the reference. Prints the counts and exits 1 on any difference.

    python tools/fault_injection.py --kills 20
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from workflow_copy import SNAKEMAKE, copy_workflow  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "tests/config/tiny_digits.yaml"  # reaches every stage
COMMAND = [SNAKEMAKE, "--cores", "2", "--configfile", "tiny.yaml"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
SKIPPED = ("logs/", "benchmarks/")  # job logs and timings differ between runs by nature


def workflow_copy(directory: Path) -> Path:
    directory.mkdir(parents=True)
    return copy_workflow(directory, yaml.safe_load(CONFIG.read_text()))


def outputs(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    return {
        str(path.relative_to(results)): path.read_bytes()
        for path in sorted(results.rglob("*"))
        if path.is_file()
        and path.name != ".snakemake_timestamp"
        and not str(path.relative_to(results)).startswith(SKIPPED)
    }


def differences(reference: dict[str, bytes], found: dict[str, bytes]) -> list[str]:
    names = sorted(set(reference) | set(found))
    return [name for name in names if reference.get(name) != found.get(name)]


def run(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*COMMAND, *args], cwd=workdir, env=ENV, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {workdir}:\n{result.stderr[-4000:]}")
    return result


def running_stages(session: int) -> list[str]:
    """The job scripts running in a process session (their names: adapt, predict, ...)."""
    listing = subprocess.run(["ps", "-eo", "sess=,args="], capture_output=True, text=True).stdout
    stages = []
    for line in listing.splitlines():
        sess, _, args = line.strip().partition(" ")
        found = re.search(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py", args)
        if sess == str(session) and found:
            stages.append(found[1])
    return stages


# The job scripts in the order their stages first run, each killed `per stage` times while it runs.
STAGES = [
    "prepare_digits",
    "corrupt",
    "train_denoiser",
    "train_model",
    "sample",
    "adapt",
    "per_image",  # the per-image methods' jobs (MEMO, GDA: rules/per_image.smk)
    "predict",
    "preview",
    "score",
    "score_timesteps",
    "claims",
    "gates",
]


def kills(workdir: Path, wanted: int, rng: random.Random, max_delay: float) -> tuple[int, int, collections.Counter]:
    """Kill the run while a job of each stage runs, in stage order, at a random moment of the job, each
    time recovering with `--unlock` and the same command, until `wanted` kills (another pass from
    scratch if the run finishes first); then let it finish."""
    done, recoveries, stages = 0, 0, collections.Counter()
    per_stage = -(-wanted // len(STAGES))  # a stage missed (done before its kill) is made up by another pass
    targets = [stage for stage in STAGES for _ in range(per_stage)]
    while True:
        process = subprocess.Popen(
            COMMAND, cwd=workdir, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        running = []
        while targets and process.poll() is None:
            running = running_stages(process.pid)
            if targets[0] in running:
                break
            later = [s for s in running if s in STAGES and STAGES.index(s) > STAGES.index(targets[0])]
            if later:  # the target stage is done (or runs beside a later one): move on
                targets.pop(0)
            time.sleep(0.02)
        if process.poll() is not None or not targets:
            if process.wait(timeout=900) != 0:
                raise RuntimeError("a run between kills failed")
            if done >= wanted:
                return done, recoveries, stages
            shutil.rmtree(workdir / "results")  # another pass: the final outputs come from the last one
            targets = [stage for stage in STAGES for _ in range(per_stage)]
            continue
        time.sleep(rng.uniform(0.0, max_delay))
        stages.update(running_stages(process.pid) or running)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        targets.pop(0)
        done += 1
        run(workdir, "--unlock")
        recoveries += 1


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; returns the filler to delete."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (2**20, 4096, 1):  # unbuffered: the last partial block too
            block = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block)
    finally:
        os.close(fd)
    return filler


def full_disk(workdir: Path, trigger: str, *args: str) -> bool:
    """Start the run, fill the disk once `trigger` (a glob under results/) exists; the run must fail, then
    finish once the space is freed. Returns whether the trigger fired."""
    process = subprocess.Popen(
        [*COMMAND, *args],
        cwd=workdir,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    filler = None
    while process.poll() is None:
        if filler is None and list((workdir / "results").glob(trigger)):
            filler = fill(workdir / "results")
        time.sleep(0.05)
    if filler is None:
        return False
    if process.returncode == 0:
        raise RuntimeError(f"the run finished although the disk was full (trigger {trigger})")
    filler.unlink()
    run(workdir, *args)
    return True


@contextlib.contextmanager
def small_file_system(directory: Path, size_mb: int):
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="at least this many, spread over the stages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-delay", type=float, default=4.0, help="longest wait (s) from the first running job to the kill"
    )
    parser.add_argument("--no-disk", action="store_true", help="skip the full-disk part (it needs root)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference_dir = workflow_copy(tmp / "reference")
        start = time.monotonic()
        run(reference_dir)
        print(f"reference run: {time.monotonic() - start:.0f} s, {len(outputs(reference_dir))} output files")
        reference = outputs(reference_dir)

        killed_dir = workflow_copy(tmp / "killed")
        count, recoveries, stages = kills(killed_dir, args.kills, rng, args.max_delay)
        diff = differences(reference, outputs(killed_dir))
        failures += bool(diff)
        print(f"kills: {count}, recoveries: {recoveries}, differing outputs: {len(diff)}")
        print("  stages running at the kills: " + ", ".join(f"{s} {n}" for s, n in sorted(stages.items())))
        for name in diff[:20]:
            print(f"  differs: {name}")

        if args.no_disk or os.geteuid() != 0:
            print("full disk: skipped (--no-disk, or not root: it mounts a tmpfs)")
        else:
            disk_dir = workflow_copy(tmp / "disk")
            size_mb = 3 * sum(len(v) for v in reference.values()) // 2**20 + 64
            with small_file_system(disk_dir / "results", size_mb):
                fired = [full_disk(disk_dir, "adapted/*/*/*.partial")]
                # the trigger: the rerun's new log, at any depth under logs/finetune/ (rules/finetune.smk
                # names it; a fixed depth silently stopped matching when the logs moved a folder down)
                shutil.rmtree(disk_dir / "results/logs/finetune")
                fired.append(full_disk(disk_dir, "logs/finetune/**/*.log", "--forcerun", "finetune"))
                diff = differences(reference, outputs(disk_dir))
            failures += bool(diff) + (not all(fired))
            print(
                f"full disk mid-adaptation: {'filled' if fired[0] else 'NOT TRIGGERED'}, mid-fine-tuning: "
                f"{'filled' if fired[1] else 'NOT TRIGGERED'}; recovered; differing outputs: {len(diff)}"
            )
            for name in diff[:20]:
                print(f"  differs: {name}")
    print("fault injection:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
