"""The workflow on a real SLURM cluster through profiles/slurm (snakemake-executor-plugin-slurm).

A single-node SLURM on localhost (tools/local-slurm/start.sh, root and apt needed) runs part
of the tiny digits workflow: in a copy of the finished local run (conftest.tiny_run), `snakemake
--workflow-profile --forcerun` reruns the job of one adapted store (the tiny run's one adapt job over
every set) and everything that depends on it (prediction, scoring, claims, preview) as SLURM jobs,
the adaptation on a (fake GRES) GPU. Every
output must be byte-identical to the local run's. It runs only with SDA_REQUIRE_SLURM=1 (CI), and
then fails rather than skips when the cluster cannot be started.
"""

import importlib.util
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT, SNAKEMAKE

LOCAL_SLURM = ROOT / "tools" / "local-slurm"
LOCAL_SLURM_BASE = Path(os.environ.get("LOCAL_SLURM_BASE", f"{os.environ.get('TMPDIR') or '/tmp'}/local-slurm"))
# The plugin can loop forever and ignore SIGTERM when status checks fail: kill it for sure.
SLURM_RUN_SECONDS = 600
# Rerun in the copy of the local run, with everything downstream of them, through SLURM.
FORCED = ["results/adapted/dda/fog/shard-0.zarr"]  # few stages: the plugin's polling costs ~36 s per stage
TABLES = ["digits_c.csv", "digits_c_paired.csv", "digits_sanity.csv", "digits_gates.csv", "digits_claims.csv"]
# Rules that ask SLURM for a (fake GRES) GPU in this test, as `device: cuda` would make them do.
GPU_RULES = ["adapt"]


def unavailable(reason):
    if os.environ.get("SDA_REQUIRE_SLURM") == "1":
        pytest.fail(f"SDA_REQUIRE_SLURM=1, but the local SLURM cluster is unavailable: {reason}")
    pytest.skip(f"local SLURM cluster unavailable: {reason}")


# package -> the command start.sh looks for before installing it
SLURM_PACKAGES = {"munge": "munged", "slurmctld": "slurmctld", "slurmd": "slurmd", "slurm-client": "sbatch"}


def daemon_running(name):
    pid_file = LOCAL_SLURM_BASE / "run" / f"{name}.pid"
    try:
        pid = pid_file.read_text().strip()
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def local_slurm():
    """Start the local cluster; stop it at the end only if this fixture started it.

    Opt-in (SDA_REQUIRE_SLURM=1, set by .ci/run): start.sh writes /etc/slurm/slurm.conf, which must
    never happen by accident on a machine that belongs to a real cluster.
    """
    if os.environ.get("SDA_REQUIRE_SLURM") != "1":
        pytest.skip("the local SLURM test writes /etc/slurm: run it with SDA_REQUIRE_SLURM=1 (as CI does)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        unavailable('snakemake-executor-plugin-slurm is not installed (pip install -e ".[slurm]")')
    if not (LOCAL_SLURM / "start.sh").is_file():
        unavailable(f"{LOCAL_SLURM}/start.sh not found")
    if os.geteuid() != 0:
        unavailable("start.sh needs root")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        unavailable("SLURM is not installed and there is no apt-get to install it")
    already_running = daemon_running("slurmctld") and daemon_running("slurmd")
    # the packages start.sh installs when their command is missing: removed again at the end
    installed_here = [package for package, command in SLURM_PACKAGES.items() if shutil.which(command) is None]
    started = subprocess.run(["bash", str(LOCAL_SLURM / "start.sh")], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        unavailable(f"start.sh failed ({started.returncode}): {started.stderr[-2000:]}")
    yield LOCAL_SLURM_BASE
    if not already_running:
        subprocess.run(["bash", str(LOCAL_SLURM / "stop.sh")], capture_output=True, timeout=120)
        # A SLURM client left without its controller costs every later `snakemake` 9 s: the SLURM
        # plugin runs `scontrol show config` when it is imported, which waits for the controller.
        if installed_here:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(
                ["apt-get", "remove", "-y", "-qq", *installed_here], capture_output=True, env=env, timeout=300
            )


def local_cluster_profile(profile):
    """profiles/slurm adapted to the one-node test cluster; every other key is used as shipped."""
    profile = yaml.safe_load(yaml.safe_dump(profile))
    profile.update(
        {
            "slurm-status-command": "squeue",  # no slurmdbd here, so no sacct
            "slurm-no-account": True,  # no accounts either (ignored by plugin 2.8.0, whose guess
            # fails harmlessly: it then submits without -A)
            "slurm-init-seconds-before-status-checks": 2,
            "slurm-keep-successful-logs": True,  # the test reads them
            "retries": 0,  # fail at once rather than resubmit
            "latency-wait": 5,  # one machine, no shared file system delay
        }
    )
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        if "mem_mb" in resources:
            resources["mem_mb"] = 1000  # the node has a few GB; the tiny jobs need less
    for rule in GPU_RULES:
        profile["set-resources"].setdefault(rule, {})["gpu"] = 1
    return profile


def job_stats(output):
    """The "Job stats" table snakemake prints before running: {rule: count}."""
    lines = output[output.index("Job stats:") :].splitlines()[3:]
    stats = {}
    for line in lines:
        name, count = line.split()
        if name == "total":
            return stats
        stats[name] = int(count)
    raise AssertionError("no job stats in the output")


def files_under(path):
    """Relative path -> bytes of every file under path, without Snakemake's directory timestamp flags."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        str(f.relative_to(path)): f.read_bytes()
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name != ".snakemake_timestamp"
    }


def test_profile_names_real_rules_and_no_gres():
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    from sda_core.methods import PER_IMAGE_STAGES

    rules = {
        name
        for path in (ROOT / "rules").glob("*.smk")
        for name in re.findall(r"^(?:rule|use rule \w+ as) (\w+)", path.read_text(), re.M)
    }
    rules |= set(PER_IMAGE_STAGES)  # rules/per_image.smk makes a rule per registry entry, named after it
    assert set(profile["set-resources"]) <= rules, set(profile["set-resources"]) - rules
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        assert "gres" not in resources and "gpu" not in resources  # GPUs come from the rules' resources
        extra = str(resources.get("slurm_extra", ""))
        assert "--gres" not in extra and "--gpus" not in extra  # the plugin refuses them there
    for key in ["slurm-status-command", "slurm-no-account"]:
        assert key not in profile  # site settings: auto-detected by the plugin, or the user's global profile


def test_tiny_run_through_slurm_equals_the_local_run(local_slurm, tiny_run, tmp_path):
    workdir = tmp_path / "slurm"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    shutil.rmtree(workdir / ".snakemake" / "log", ignore_errors=True)
    shutil.copytree(ROOT / "profiles", workdir / "profiles", dirs_exist_ok=True)
    profile = yaml.safe_load((workdir / "profiles/slurm/config.yaml").read_text())
    (workdir / "profiles/slurm-local").mkdir()
    (workdir / "profiles/slurm-local/config.yaml").write_text(yaml.safe_dump(local_cluster_profile(profile)))

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run_id = None
    try:
        result = subprocess.run(
            [
                "timeout",
                "-s",
                "KILL",
                str(SLURM_RUN_SECONDS),
                SNAKEMAKE,
                "--forcerun",
                *FORCED,
                "--workflow-profile",
                "profiles/slurm-local",
                "--configfile",
                "tiny.yaml",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=SLURM_RUN_SECONDS + 60,
        )
        output = result.stdout + result.stderr
        match = re.search(r"SLURM run ID: (\S+)", output)
        run_id = match and match.group(1)
        assert result.returncode == 0, f"snakemake through SLURM failed ({result.returncode}):\n{output[-8000:]}"
    finally:
        if run_id:  # a killed run leaves its queued jobs behind
            subprocess.run(["scancel", "--name", run_id], capture_output=True, timeout=60)

    # Which jobs ran: the plugin's log per SLURM job, .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log
    expected = Counter({rule: n for rule, n in job_stats(output).items() if rule != "all"})
    # the tiny run groups its target sets (target_jobs: grouped): the forced store's job adapts every
    # set, so every prediction group holding an adapted set (all but the synthetic one) is made again
    assert expected == {
        "adapt": 1,
        "predict": 6,
        "score": 1,
        "score_target": 1,
        "score_timesteps": 1,
        "claims": 1,
        "gates": 1,
        "preview": 1,
    }
    logs = {
        int(log.stem): log.relative_to(workdir / ".snakemake/slurm_logs").parts[0].removeprefix("rule_")
        for log in (workdir / ".snakemake/slurm_logs").glob("rule_*/**/*.log")
    }
    assert Counter(logs.values()) == expected
    # ...and that SLURM ran them to completion: its job completion log, one line per job
    completions = {}
    for line in (local_slurm / "log" / "jobcomp.txt").read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("Name") == run_id:
            completions[int(fields["JobId"])] = fields["JobState"]
    assert completions == {job: "COMPLETED" for job in logs}
    # `resources: gpu=1` became `--gpus=1`: SLURM allocated one of its GRES GPUs to exactly those jobs
    for job, rule in logs.items():
        shown = subprocess.run(
            ["scontrol", "show", "job", "-o", str(job)], capture_output=True, text=True, timeout=60
        ).stdout
        assert ("gres:gpu:1" in shown) == (rule in GPU_RULES), shown

    # The same bytes as the local run: tables (so every float exactly), image stores, predictions, checkpoints
    for table in TABLES:
        slurm, local = (run / "results/tables" / table for run in (workdir, tiny_run))
        assert slurm.read_bytes() == local.read_bytes(), table
    for directory in ["synthetic", "adapted", "models", "predictions", "plots"]:
        slurm, local = files_under(workdir / "results" / directory), files_under(tiny_run / "results" / directory)
        assert slurm.keys() == local.keys(), directory
        differing = [name for name in slurm if slurm[name] != local[name]]
        assert not differing, f"results/{directory}: {differing[:10]}"
