"""The real workflow through the `snakemake` command, on a tiny digits configuration."""

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import ROOT, SNAKEMAKE, TINY, WORKFLOW_PARTS, run_snakemake  # noqa: F401 (re-exported)

from sda_core.ensemble import FUSION_LABELS


@pytest.fixture
def workdir(tiny_workdir):
    return tiny_workdir


@pytest.fixture
def finished_run(tiny_run):
    return tiny_run


def test_tiny_digits_run_writes_the_tables_and_plot(finished_run):
    table = pd.read_csv(finished_run / "results/tables/digits_c.csv")
    core = {"Source", "DiffPure", "DDA", "SDA", "DDA (adapted only)", "SDA (adapted only)"}
    fusions = {f"{m} ({f})" for m in ("DDA", "SDA") for f in FUSION_LABELS.values()}
    baselines = {"MEMO", "GDA", "GDA (ensemble)", "SDA on GDA", "SDA on GDA (f'_GDA)"}
    assert set(table.method) == core | fusions | {"SDA (f_c')", "SDA (1 per class)", "TENT"} | baselines
    assert set(table.corruption) == {"gaussian_noise", "fog", "saturate", "mean"}
    test_rows = table[(table.split == "test") & (table.corruption != "mean")]
    limited = table.method.isin(baselines)  # memo.images, gda.images: 6, in two shards
    assert (test_rows[~test_rows.method.isin(baselines)].n == 180).all() and (
        table[~limited & (table.corruption == "saturate")].n == 20
    ).all()
    assert (table[limited & (table.corruption != "mean")].n == 6).all()
    assert (finished_run / "results/memo/tiny_resnet/fog/shard-1.zarr").is_dir()
    assert (finished_run / "results/gda/tiny_resnet/fog/shard-1.zarr").is_dir()
    assert (finished_run / "results/gda-adapted/tiny_resnet/fog/shard-1.zarr").is_dir()  # GDA's images
    assert (finished_run / "results/tent/tiny_resnet/fog/shard-0.zarr").is_dir()  # every image, one stream
    # the named target set (targets: w): its own tables, every method, not in the corruptions' means
    w = pd.read_csv(finished_run / "results/tables/digits_w.csv")
    assert {"Source", "MEMO", "DiffPure", "GDA", "DDA", "SDA", "SDA (f_c')"} <= set(w.method)
    assert set(w.target) == {"w"}
    assert (w[~w.method.isin(baselines)].n == 180).all() and (w[w.method.isin(baselines)].n == 6).all()
    w_paired = pd.read_csv(finished_run / "results/tables/digits_w_paired.csv")
    assert {"SDA - DDA", "MEMO - Source", "GDA - Source"} <= set(w_paired.comparison)
    assert table.top1.between(0, 100).all() and (table.ci_low <= table.top1).all()
    assert (table.top1 <= table.ci_high).all()
    sanity = pd.read_csv(finished_run / "results/tables/digits_sanity.csv")
    assert len(sanity) == 8 and sanity.check.str.contains("misalignment").any()
    assert sanity.set_index("check").loc["source agrees with generator label", "n"] == 20
    assert (finished_run / "results/plots/digits_c.png").stat().st_size > 10_000
    assert (finished_run / "results/plots/digits_preview.png").stat().st_size > 5_000
    paired = pd.read_csv(finished_run / "results/tables/digits_c_paired.csv")
    assert {
        "SDA - DDA",
        "DDA - Source",
        "SDA - Source",
        "DiffPure - Source",
        "SDA - SDA (f_c')",
        "MEMO - Source",
        "SDA - MEMO",
        "GDA - Source",
        "SDA - GDA",
        "GDA (ensemble) - GDA",
        "SDA on GDA - GDA",
        "SDA on GDA - SDA",
        "SDA on GDA (f'_GDA) - SDA on GDA",
        "SDA on GDA (f'_GDA) - GDA",
        "TENT - Source",
        "SDA - TENT",
    } <= set(paired.comparison)
    assert set(paired.corruption) == {"gaussian_noise", "fog", "saturate", "mean"}
    assert (paired.ci_low <= paired.difference).all() and (paired.difference <= paired.ci_high).all()


def test_sda_on_gda_is_f_on_the_raw_image_plus_f_prime_on_gdas_stored_image(finished_run):
    """SDA on GDA on fog, computed here from the stores and the two models: f(x) + f'(x_gda), softmax sums
    over the images GDA covers (gda.images: 6 of 180, evenly spaced)."""
    import numpy as np

    from sda_core.image_sets import covered_images
    from sda_core.models.classifiers import Preprocess, load_classifier
    from sda_core.store import StoreSequence

    def load(model):
        return load_classifier("resnet10t", 10, {}, finished_run / f"results/models/{model}/tiny_resnet.safetensors")

    def probabilities(model, images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return model.eval()(Preprocess(8, 8)(x)).softmax(1).numpy()

    target = StoreSequence([finished_run / "results/target/fog.zarr"])
    raw, labels = target.read_positions(covered_images(len(target), 6))
    adapted_stores = StoreSequence(
        [finished_run / f"results/gda-adapted/tiny_resnet/fog/shard-{k}.zarr" for k in (0, 1)]
    )
    adapted, adapted_labels = adapted_stores.read(0, len(adapted_stores))
    np.testing.assert_array_equal(adapted_labels, labels)
    fused = probabilities(load("source"), raw) + probabilities(load("finetuned"), adapted)
    expected = 100 * np.mean(fused.argmax(1) == labels)
    table = pd.read_csv(finished_run / "results/tables/digits_c.csv")
    row = table[(table.method == "SDA on GDA") & (table.corruption == "fog") & (table.arch == "tiny_resnet")].iloc[0]
    assert row.n == 6 and abs(row.top1 - expected) < 0.01


def test_the_timestep_study_sweeps_its_levels_with_f_t(finished_run):
    tables = finished_run / "results/tables"
    steps = pd.read_csv(tables / "digits_timesteps.csv")
    assert set(steps.t) == {0, 111, 333, 666} and set(steps.process) == {"unguided", "dda"}
    assert set(steps.model) == {"source", "finetuned", "finetuned_t"} and (steps.n == 180).all()
    gains = pd.read_csv(tables / "digits_timesteps_gain.csv")
    assert set(gains.comparison) == {"source - source on clean", "finetuned - source", "finetuned_t - source"}
    # the configured start's sets are the run's own, not a second copy; f'_t per other level
    assert not (finished_run / "results/adapted/dda-t333").exists()
    assert (finished_run / "results/adapted/unguided-t666/clean/shard-1.zarr").exists()
    assert (finished_run / "results/plots/digits_timesteps.png").stat().st_size > 10_000


def test_the_fine_tuning_studies_make_their_variants_of_f_prime(finished_run):
    models = sorted(p.name for p in (finished_run / "results/models").iterdir() if p.is_dir())
    assert models == [
        "finetuned",
        "finetuned-1pc",
        "finetuned-gda",
        "finetuned-generated",
        "finetuned-t111",
        "finetuned-t666",
        "source",
    ]
    log = (finished_run / "results/logs/finetune/all/tiny_resnet.log").read_text()  # grouped
    assert "on 10 images" in log
    # f'_GDA's data: the architecture's own GDA-made MoD set, every generated image in its order
    from sda_core.store import StoreSequence

    def stores(folder):
        return StoreSequence([finished_run / f"results/{folder}/shard-{k}.zarr" for k in (0, 1)])

    mod, generated = stores("gda-adapted/tiny_resnet/synthetic-mod"), stores("synthetic/generated")
    assert len(mod) == len(generated) == 20
    assert (mod.labels() == generated.labels()).all() and (mod.read(0, 20)[0] != generated.read(0, 20)[0]).any()


def test_the_fusion_study_tunes_one_weight_per_tuned_method(finished_run):
    fusion = pd.read_csv(finished_run / "results/tables/digits_fusion.csv")
    assert fusion.groupby("method").chosen.sum().to_dict() == {"DDA (tuned weight)": 1, "SDA (tuned weight)": 1}


def test_the_claims_table_gives_each_claim_a_verdict(finished_run):
    claims = pd.read_csv(finished_run / "results/tables/digits_claims.csv")
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive"}
    assert {
        "sda_beats_dda",
        "misalignment",
        "alignment_gain_t700",
        "mod_beats_generated_only",
        "few_images_suffice",
        "sda_on_gda_beats_gda",
        "gda_alignment_helps",
    } <= set(claims.claim)


def test_the_run_records_its_provenance_benchmarks_and_progress(finished_run):
    assert (finished_run / "results/benchmarks/mod/all/0.tsv").exists()
    provenance = json.loads((finished_run / "results/tables/digits_provenance.json").read_text())
    assert provenance["packages"]["torch"] == torch.__version__.split("+")[0]
    assert provenance["config"]["adaptation"]["steps"] == TINY["adaptation"]["steps"]
    assert provenance["code"]["commit"] is None and "not a git checkout" in provenance["code"]["note"]
    assert "shard 1/2" in (finished_run / "results/logs/sample_synthetic/1.log").read_text()


def test_second_run_has_nothing_to_do(finished_run):
    result = run_snakemake(finished_run, "--configfile", "tiny.yaml")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_html_report_shows_every_result_with_its_caption(finished_run):
    """Each table and plot of the run is in the report, captioned with its own text (report/*.rst)."""
    run_snakemake(finished_run, "--configfile", "tiny.yaml", "--report", "report.html")
    html = (finished_run / "report.html").read_text(errors="ignore")
    captions = {
        "digits_c.csv": "accuracy.rst",
        "digits_c_paired.csv": "paired.rst",
        "digits_sanity.csv": "sanity.rst",
        "digits_c.png": "plot.rst",
        "digits_preview.png": "preview.rst",
        "digits_claims.csv": "claims.rst",
        "digits_timesteps.csv": "timesteps.rst",
    }
    for result, caption in captions.items():
        assert result in html, result
        opening = " ".join((ROOT / "report" / caption).read_text().split()[:6])  # its first words, as rendered
        assert opening in " ".join(html.split()), (result, caption)


def test_one_prediction_job_per_architecture_gives_the_same_tables(finished_run, tmp_path):
    workdir = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)
    (workdir / "per_arch.yaml").write_text(yaml.safe_dump({**TINY, "predict": {"jobs": "per_architecture"}}))
    result = run_snakemake(workdir, "--configfile", "per_arch.yaml")
    assert re.search(r"^predict\s+1$", result.stderr, re.MULTILINE)  # the job stats: one predict job
    assert (workdir / "results/predictions/tiny_resnet/all.npz").is_file()
    for table in ("digits_c.csv", "digits_c_paired.csv", "digits_sanity.csv"):
        assert (workdir / "results/tables" / table).read_bytes() == (
            finished_run / "results/tables" / table
        ).read_bytes()


def test_a_job_per_target_set_makes_the_stores_the_grouped_jobs_made(finished_run, tmp_path):
    """target_jobs: per_target_set (one corrupt, adapt, MEMO and GDA job per target set and shard, a MoD job
    per start timestep, a fine-tuning job per model) against the tiny run's grouped jobs: the same bytes,
    store by store and model by model."""
    assert TINY["target_jobs"] == "grouped"
    workdir = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)
    (workdir / "per_set.yaml").write_text(yaml.safe_dump({**TINY, "target_jobs": "per_target_set"}))
    stores = [
        "results/target/fog.zarr",
        "results/adapted/dda/fog/shard-1.zarr",
        "results/adapted/diffpure/fog/shard-0.zarr",
        "results/memo/tiny_resnet/fog/shard-1.zarr",
        "results/gda/tiny_resnet/w/shard-0.zarr",
        "results/synthetic/mod-t666/shard-0.zarr",
    ]
    models = [
        "results/models/finetuned-1pc/tiny_resnet.safetensors",
        "results/models/finetuned-t111/tiny_resnet.safetensors",
    ]
    # the grouped run's records name other params: these stores and what they read are made again
    result = run_snakemake(workdir, *stores, *models, "--configfile", "per_set.yaml")
    for rule, count in (("corrupt", 1), ("adapt", 2), ("memo", 1), ("gda", 1), ("finetune", 2)):
        assert re.search(rf"^{rule}\s+{count}$", result.stderr, re.MULTILINE), rule  # a job per set or model
    assert re.search(r"^mod_from_timestep\s+\d+$", result.stderr, re.MULTILINE)
    assert (workdir / "results/logs/memo/tiny_resnet/fog/1.log").is_file()
    for model in models:
        assert (workdir / model).read_bytes() == (finished_run / model).read_bytes(), model
    for store in stores:
        files = sorted(p.relative_to(finished_run / store) for p in (finished_run / store).rglob("*") if p.is_file())
        assert files and files == sorted(
            p.relative_to(workdir / store) for p in (workdir / store).rglob("*") if p.is_file()
        )
        for name in files:
            assert (workdir / store / name).read_bytes() == (finished_run / store / name).read_bytes(), (store, name)


def test_config_typo_fails_before_any_job(workdir, tmp_path):
    bad = dict(TINY, adaptation={**TINY["adaptation"], "sclae": 2})
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = run_snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0 and "sclae" in result.stdout + result.stderr


def slow_adaptation_workflow(workdir):
    """The workflow in `workdir` with slow.yaml (one shard, batches of 2: a long adaptation job to kill);
    returns that job's output."""
    from workflow_helpers import copy_workflow

    copy_workflow(workdir)
    slow = dict(TINY, adaptation={**TINY["adaptation"], "batch_size": 2, "shards": 1}, target_jobs="per_target_set")
    (workdir / "slow.yaml").write_text(yaml.safe_dump(slow))
    return "results/adapted/dda/fog/shard-0.zarr"


def test_killed_run_resumes_from_finished_chunks(tmp_path):
    """SIGKILL the whole snakemake process group mid-adaptation; the rerun keeps the finished chunks."""
    import signal
    import time

    import zarr

    target = slow_adaptation_workflow(tmp_path)
    partial = tmp_path / f"{target}.partial"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [SNAKEMAKE, target, "--cores", "1", "--configfile", "slow.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and process.poll() is None:
        if (partial / "done" / "zarr.json").exists():
            done = int(zarr.open_group(str(partial), mode="r")["done"][:].sum())
            if done >= 3:
                break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert done >= 3, "the adaptation job did not get far enough to be killed mid-way"
    assert not (tmp_path / target).exists()
    run_snakemake(tmp_path, "--unlock", "--configfile", "slow.yaml")
    run_snakemake(tmp_path, target, "--configfile", "slow.yaml")
    log = (tmp_path / "results/logs/adapt/dda/fog/0.log").read_text()
    resumed = [line for line in log.splitlines() if "resuming" in line]
    assert resumed and int(resumed[-1].split(": ")[-1].split(" of ")[0]) >= 3
    assert (tmp_path / target / "zarr.json").exists()


def test_a_config_mistake_is_refused_before_any_job_and_keeps_finished_outputs(finished_run):
    """Run for real (not -n): the problem must stop the workflow before Snakemake deletes any output."""
    bad = dict(TINY, adaptation={**TINY["adaptation"], "steps": 10})
    (finished_run / "bad_steps.yaml").write_text(yaml.safe_dump(bad))
    stores = sorted((finished_run / "results/adapted").glob("*/*/shard-*.zarr"))
    before = {store: (store / "zarr.json").stat().st_mtime_ns for store in stores}
    result = run_snakemake(finished_run, "--configfile", "bad_steps.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "problem(s) in the configuration, found before any job ran" in output
    assert "adaptation.steps: 10 steps do not fit a respacing of 10" in output
    assert stores and {store: (store / "zarr.json").stat().st_mtime_ns for store in stores} == before


@pytest.mark.parametrize(
    "change, expected",
    [
        # a fine-tuning setting: f', its study variants (one grouped job of its 5 models) and what reads
        # them, never the source classifier
        (
            lambda c: c["architectures"][0]["finetune"].update(lr=2e-3),
            {
                "finetune": 1,
                "predict": 7,
                "predict_per_image_adapted": 1,
                "score": 1,
                "score_target": 1,
                "score_timesteps": 1,
                "claims": 1,
                "gates": 1,
                "all": 1,
            },
        ),
        # one more validation corruption: its own store, adaptations and predictions, and the tables; with
        # target_jobs: grouped (the tiny config) every set of the grouped stages is made again, and so
        # every prediction (per_target_set: the new set's corrupt, adapt, MEMO and GDA jobs and the
        # predict job of its group only)
        (
            lambda c: c["corruptions"].update(validation=["saturate", "spatter"]),
            {
                "corrupt": 1,
                "adapt": 2,
                "memo": 2,
                "gda": 2,
                "tent": 1,
                "predict": 7,
                "predict_per_image_adapted": 1,
                "preview": 1,
                "score": 1,
                "score_target": 1,
                "score_timesteps": 1,
                "claims": 1,
                "gates": 1,
                "all": 1,
            },
        ),
        # MEMO's optimiser: its predictions (one grouped job per shard) and the tables, nothing else
        (
            lambda c: c["architectures"][0].update(memo={"lr": 1e-3}),
            {"memo": 2, "score": 1, "score_target": 1, "claims": 1, "gates": 1, "all": 1},
        ),
        # GDA's objective: its predictions (one grouped job per shard), its MoD of the gda_aligned study and
        # so f'_GDA, fine-tuned in the one grouped job of the architecture's models (whose f' every predict
        # job reads), f' and f'_GDA on GDA's images, and the tables
        (
            lambda c: c["gda"].update(objective="marginal"),
            {
                "gda": 2,
                "gda_mod": 2,
                "finetune": 1,
                "predict": 7,
                "score_timesteps": 1,
                "predict_per_image_adapted": 1,
                "score": 1,
                "score_target": 1,
                "claims": 1,
                "gates": 1,
                "all": 1,
            },
        ),
        # TENT's batch size: its predictions (one grouped job, the stream is not sharded) and the tables
        (
            lambda c: c["tent"].update(batch_size=16),
            {"tent": 1, "score": 1, "score_target": 1, "claims": 1, "gates": 1, "all": 1},
        ),
    ],
)
def test_a_change_reruns_exactly_its_dependants(finished_run, change, expected):
    import copy

    from workflow_helpers import job_counts

    config = copy.deepcopy(TINY)
    change(config)
    (finished_run / "changed.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(finished_run, "-n", "--configfile", "changed.yaml")
    assert job_counts(result.stdout) == expected


def test_a_job_outliving_a_killed_snakemake_is_recovered_by_unlock_and_the_same_command(tmp_path):
    """SIGKILL Snakemake alone mid-job (a lost login session): the job finishes on its own and leaves an
    output Snakemake never marked complete. The documented recovery must work: `--unlock`, then the
    same command (profiles/default sets rerun-incomplete, safe because outputs are written atomically)."""
    import signal
    import time

    target = slow_adaptation_workflow(tmp_path)
    run_snakemake(tmp_path, target, "--configfile", "slow.yaml")
    finished = {p.relative_to(tmp_path / target): p.read_bytes() for p in (tmp_path / target).rglob("*") if p.is_file()}
    shutil.rmtree(tmp_path / target)

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [SNAKEMAKE, target, "--cores", "1", "--configfile", "slow.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / f"{target}.partial").exists():
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)  # Snakemake only: its job runs on
    process.wait()
    while time.time() < deadline and not (tmp_path / target / "zarr.json").exists():
        time.sleep(0.2)
    assert (tmp_path / target / "zarr.json").exists(), "the orphaned job did not finish"
    time.sleep(2)  # let the job process exit

    run_snakemake(tmp_path, "--unlock", "--configfile", "slow.yaml")
    run_snakemake(tmp_path, target, "--configfile", "slow.yaml")
    recovered = {
        p.relative_to(tmp_path / target): p.read_bytes() for p in (tmp_path / target).rglob("*") if p.is_file()
    }
    assert recovered.keys() == finished.keys() and recovered == finished


def test_a_quality_gate_fails_the_run_naming_the_measured_figure_or_warns(finished_run, tmp_path):
    workdir = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)
    sanity = pd.read_csv(workdir / "results/tables/digits_sanity.csv").set_index("check")
    clean = sanity.loc["source on clean test", "top1"]
    (workdir / "strict.yaml").write_text(yaml.safe_dump({**TINY, "gates": {"source_clean_accuracy": 99.95}}))
    result = run_snakemake(workdir, "--configfile", "strict.yaml", check=False)
    log = (workdir / "results/logs/gates.log").read_text()
    assert (
        result.returncode != 0
        and f"source_clean_accuracy: tiny_resnet measured {clean:.2f}% < 99.95% (180 images; source on clean test)"
        in log
    )
    assert not (workdir / "results/tables/digits_gates.csv").exists()
    (workdir / "warn.yaml").write_text(
        yaml.safe_dump({**TINY, "gates": {"action": "warn", "source_clean_accuracy": 99.95}})
    )
    run_snakemake(workdir, "--configfile", "warn.yaml")
    gates = pd.read_csv(workdir / "results/tables/digits_gates.csv")
    assert gates.to_dict("records") == [
        {
            "gate": "source_clean_accuracy",
            "check": "source on clean test",
            "arch": "tiny_resnet",
            "measured": round(clean, 2),
            "threshold": 99.95,
            "n": 180,
            "result": "warn",
        }
    ]


def test_another_seed_writes_its_own_folder(finished_run):
    result = run_snakemake(finished_run, "-n", "--configfile", "tiny.yaml", "--config", "seed=1")
    outputs = re.findall(r"output: (\S+?)[,\n]", result.stdout)
    assert outputs and all(path.startswith("results/seed-1/") for path in outputs), outputs[:5]
    assert "results/seed-1/tables/digits_claims.csv" in outputs
