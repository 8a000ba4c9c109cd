"""Fault injection on small configurations of both embedded worlds, compared byte for byte.

For each world (digits, digit_scenes; side by side), on its tiny test configuration made smaller still
(WORLDS: one test corruption, one shard; every stage of the world still runs):

1. An uninterrupted run: the reference outputs.
2. Kills: the same run, interrupted while a job of each stage runs, at a random moment of it, each time
   recovered with the documented command (`snakemake --unlock`, then the same command); the jobs
   running at each kill are recorded. Most interruptions are a SIGKILL of the whole process group (jobs
   included); in each pass the first is a SIGTERM of the `snakemake` process alone and the second a
   SIGTERM of its process group (a `kill` from a shell, a scheduler's time limit): after either, the
   run must stop by itself within STOP_LIMIT seconds.
3. digits only (the stores and the checkpoint writer are the worlds' own code): a full disk (results/
   on a small tmpfs; root only), filled once while adaptation runs and once while fine-tuning runs,
   each a rerun of those stages over the reference's results; the run must fail, and the same command
   must finish once space is freed.

Every final output (tables, stores, checkpoints, predictions, plots; not logs and benchmarks) must be
byte-identical to the reference. Prints the counts and exits 1 on any difference or hang.

    python tools/fault_injection.py --kills 20
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
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

TESTS = Path(__file__).resolve().parents[1] / "tests/config"
COMMAND = [SNAKEMAKE, "--cores", "2", "--configfile", "tiny.yaml"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
SKIPPED = ("logs/", "benchmarks/")  # job logs and timings differ between runs by nature
STOP_LIMIT = 300  # s from a SIGTERM to snakemake's exit: the running jobs may finish first (graceful)


@dataclasses.dataclass(frozen=True)
class World:
    config: Path  # the tiny test configuration
    smaller: dict  # what this tool changes in it: fewer jobs, every stage still reached
    stages: list[str]  # the job scripts in the order their stages first run
    full_disk: bool
    architectures: tuple[Path, ...] = ()  # architecture entries added to the configuration's (another kind's)


WORLDS = {
    "digits": World(
        TESTS / "tiny_digits.yaml",
        {
            "corruptions": {"test": ["gaussian_noise"]},
            "sampling": {"shards": 1},
            "adaptation": {"shards": 1},
            "gda": {"shards": 1},
            "predict": {"jobs": "per_architecture"},
            # per_image keeps GDA (two stores per job: its predictions and its images) and predict the
            # job of f' on GDA's images; MEMO, TENT and the other studies' jobs are more of the same code
            "memo": {"enabled": False},
            "tent": {"enabled": False},
            "studies": {
                "timesteps": {"t": [300, 700]},  # 700: MoD from another timestep (the grouped MoD job)
                "set_size": {"enabled": False},
                "gda_aligned": {"enabled": False},
            },
        },
        [
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
        ],
        full_disk=True,
        # a tiny LLaVA (kind vlm): its pre-training, LoRA fine-tunings and closed-set predictions are
        # other code in the same stages (train_model, predict)
        architectures=(TESTS / "tiny_llava.yaml",),
    ),
    "digit_scenes": World(
        TESTS / "tiny_digit_scenes.yaml",
        {"corruptions": {"test": ["gaussian_noise"]}, "sampling": {"shards": 1}},
        [
            "prepare_digit_scenes",
            "corrupt",
            "train_denoiser",
            "train_model",
            "sample",
            "adapt",
            "predict",
            "preview",
            "score",
            "gates",
        ],
        full_disk=False,
    ),
}


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied key by key (nested dicts merged, other values replaced)."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        result[key] = merged(result.get(key, {}), value) if isinstance(value, dict) else value
    return result


def small_config(world: World) -> dict:
    config = merged(yaml.safe_load(world.config.read_text()), world.smaller)
    config["architectures"] += [yaml.safe_load(entry.read_text()) for entry in world.architectures]
    return config


def workflow_copy(directory: Path, world: World) -> Path:
    directory.mkdir(parents=True)
    return copy_workflow(directory, small_config(world))


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


def stop(process: subprocess.Popen, how: str) -> bool:
    """Interrupt the run: "kill" (SIGKILL of the process group), "term" (SIGTERM of snakemake alone) or
    "term-group" (SIGTERM of the process group). Returns whether it stopped within STOP_LIMIT (after a
    SIGTERM; it is SIGKILLed if not)."""
    if how == "kill":
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True
    if how == "term":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False
    with contextlib.suppress(ProcessLookupError):  # jobs a graceful stop left behind
        os.killpg(process.pid, signal.SIGKILL)
    return True


def kills(
    name: str, workdir: Path, world: World, wanted: int, rng: random.Random, max_delay: float
) -> tuple[collections.Counter, collections.Counter, list[str]]:
    """Interrupt the run while a job of each stage runs, in stage order, at a random moment of the job,
    each time recovering with `--unlock` and the same command, until `wanted` interruptions (another pass
    from scratch if the run finishes first); then let it finish. Returns the interruptions by kind, the
    stages running at them, and the SIGTERMs the run did not stop after."""
    stages = world.stages
    done, hangs = collections.Counter(), []
    running_at = collections.Counter()
    per_stage = -(-wanted // len(stages))  # a stage missed (done before its kill) is made up by another pass
    while True:
        targets = [stage for stage in stages for _ in range(per_stage)]
        kinds = ["term", "term-group"]  # this pass's first two interruptions; SIGKILLs after them
        process = subprocess.Popen(
            COMMAND, cwd=workdir, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        while targets and process.poll() is None:
            running = running_stages(process.pid)
            if targets[0] in running:
                time.sleep(rng.uniform(0.0, max_delay))
                hit = running_stages(process.pid) or running
                running_at.update(hit)
                how = kinds.pop(0) if kinds else "kill"
                stopped = stop(process, how)
                if not stopped:
                    hangs.append(f"{how} while {targets[0]} ran")
                done[how] += 1
                print(
                    f"  {name}: {how} while {', '.join(hit)} ran: {'stopped' if stopped else 'DID NOT STOP'}",
                    flush=True,
                )
                targets.pop(0)
                run(workdir, "--unlock")
                process = subprocess.Popen(
                    COMMAND,
                    cwd=workdir,
                    env=ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                continue
            later = [s for s in running if s in stages and stages.index(s) > stages.index(targets[0])]
            if later:  # the target stage is done (or runs beside a later one): move on
                targets.pop(0)
            time.sleep(0.02)
        if process.wait(timeout=900) != 0:
            raise RuntimeError("a run between kills failed")
        if sum(done.values()) >= wanted:
            return done, running_at, hangs
        shutil.rmtree(workdir / "results")  # another pass: the final outputs come from the last one


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


def reference_copy(reference_dir: Path, destination: Path) -> None:
    """The reference run's results and Snakemake's records of them, under `destination` (a workflow copy)."""
    shutil.copytree(reference_dir / "results", destination / "results", dirs_exist_ok=True)
    shutil.copytree(reference_dir / ".snakemake/metadata", destination / ".snakemake/metadata")


def check_world(name: str, world: World, tmp: Path, args: argparse.Namespace, rng: random.Random) -> int:
    """The three checks on one world; returns the number of failed ones."""
    failures = 0
    reference_dir = workflow_copy(tmp / name / "reference", world)
    start = time.monotonic()
    run(reference_dir)
    reference = outputs(reference_dir)
    print(f"{name}: reference run {time.monotonic() - start:.0f} s, {len(reference)} output files", flush=True)

    start = time.monotonic()
    killed_dir = workflow_copy(tmp / name / "killed", world)
    done, running_at, hangs = kills(name, killed_dir, world, args.kills, rng, args.max_delay)
    diff = differences(reference, outputs(killed_dir))
    failures += bool(diff) + bool(hangs)
    print(
        f"{name}: interruptions {sum(done.values())} (SIGKILL of the group {done['kill']}, SIGTERM of snakemake "
        f"{done['term']}, SIGTERM of the group {done['term-group']}), each recovered; runs that did not stop "
        f"within {STOP_LIMIT} s of a SIGTERM: {len(hangs)}; differing outputs: {len(diff)} "
        f"({time.monotonic() - start:.0f} s)"
    )
    print(
        f"  {name}: stages running at the interruptions: "
        + ", ".join(f"{s} {n}" for s, n in sorted(running_at.items()))
    )
    missed = [stage for stage in world.stages if stage not in running_at]
    if missed:
        print(f"  {name}: stages no interruption caught running (their jobs ended first): " + ", ".join(missed))
    for line in hangs + [f"differs: {n}" for n in diff[:20]]:
        print(f"  {name}: {line}")

    if not world.full_disk:
        return failures
    if args.no_disk or os.geteuid() != 0:
        print(f"{name}: full disk skipped (--no-disk, or not root: it mounts a tmpfs)")
        return failures
    start = time.monotonic()
    disk_dir = workflow_copy(tmp / name / "disk", world)
    size_mb = 3 * sum(len(v) for v in reference.values()) // 2**20 + 64
    with small_file_system(disk_dir / "results", size_mb):
        reference_copy(reference_dir, disk_dir)
        fired = [full_disk(disk_dir, "adapted/*/*/*.partial", "--forcerun", "adapt")]
        # the trigger: the rerun's new log, at any depth under logs/finetune/ (rules/finetune.smk names it;
        # a fixed depth silently stopped matching when the logs moved a folder down)
        shutil.rmtree(disk_dir / "results/logs/finetune")
        fired.append(full_disk(disk_dir, "logs/finetune/**/*.log", "--forcerun", "finetune"))
        diff = differences(reference, outputs(disk_dir))
    failures += bool(diff) + (not all(fired))
    print(
        f"{name}: full disk mid-adaptation: {'filled' if fired[0] else 'NOT TRIGGERED'}, mid-fine-tuning: "
        f"{'filled' if fired[1] else 'NOT TRIGGERED'}; recovered; differing outputs: {len(diff)} "
        f"({time.monotonic() - start:.0f} s)"
    )
    for path in diff[:20]:
        print(f"  {name}: differs: {path}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="at least this many per world, spread over its stages")
    parser.add_argument("--world", choices=list(WORLDS), action="append", help="the worlds to check (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-delay", type=float, default=4.0, help="longest wait (s) from the first running job to the kill"
    )
    parser.add_argument("--no-disk", action="store_true", help="skip the full-disk part (it needs root)")
    args = parser.parse_args()
    names = args.world or list(WORLDS)
    # The worlds side by side: much of each one's time is `snakemake` starting, stopping and unlocking on
    # one core, or waiting for a stage to start. Each world draws its own random moments, whatever the order.
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        checks = [
            pool.submit(check_world, name, WORLDS[name], Path(tmp), args, random.Random(f"{args.seed}/{name}"))
            for name in names
        ]
        failures = sum(check.result() for check in checks)
    print("fault injection:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
