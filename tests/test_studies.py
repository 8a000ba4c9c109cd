"""The studies of the paper's argument: sweep levels, study sets and models, fusions and the weight tuned
on the validation corruptions only, per-corruption paired rows, the timestep tables and the claims."""

import numpy as np
import pandas as pd
import pytest

from sda_core.ensemble import WEIGHT_GRID, fuse, tune_weight
from sda_core.image_sets import RunImageSets, SweepLevel, labels_key, parse_process, predictions_key
from sda_core.jobs.claims import FAILS, HOLDS, INCONCLUSIVE, claims_table
from sda_core.methods import run_methods
from sda_core.processes import reverse_process
from sda_core.scoring.accuracy import paired_table, tuned_weights
from sda_core.scoring.tables import corruption_wins
from sda_core.scoring.timesteps import MISALIGNMENT, gain_table, timestep_correctness, timestep_table
from sda_core.studies import Studies, sweep_levels
from sda_core.tasks.classification import class_balanced_subset


def test_sweep_levels_are_the_nearest_distinct_respaced_levels_with_the_configured_one_marked():
    levels = sweep_levels(
        [100, 200, 300, 400, 500, 600, 700, 800, 900, 999], respacing=20, steps=10, noise_index="reference"
    )
    assert [level.t for level in levels] == [105, 210, 315, 421, 526, 578, 684, 789, 894, 999]
    assert [level.t for level in levels if level.configured] == [526]  # DDA noises to index 10
    # two requests nearest the same level give one level; "matched" noises to steps - 1
    assert [level.t for level in sweep_levels([500, 510], 20, 10, "matched")] == [526]
    assert sweep_levels([500], 20, 10, "matched")[0].configured is False  # matched noises to index 9 (473)


def test_a_swept_process_is_the_configured_one_noised_to_its_level():
    adaptation = {"respacing": 20, "steps": 10, "noise_index": "reference", "guidance": {"scale": 1.0}}
    dda = reverse_process("dda", adaptation, {})
    swept = reverse_process("dda-t315", adaptation, {})
    assert swept.steps == 6 and swept.guidance == dda.guidance and swept.respacing == 20
    with pytest.raises(ValueError, match="not a level"):
        reverse_process("dda-t300", adaptation, {})
    assert parse_process("unguided-t105") == ("unguided", 105)
    with pytest.raises(ValueError, match="unknown reverse process"):
        parse_process("diffpure-t105")


STUDY_SETS = RunImageSets(
    ("fog",), True, (SweepLevel(105), SweepLevel(526, configured=True)), True, ("finetuned-generated",)
)


def test_study_sets_and_the_models_that_score_them():
    groups = STUDY_SETS.groups()
    assert groups["timesteps"] == ["unguided-t105/clean", "dda-t105/clean"]
    assert groups["clean"] == ["clean", "dda/clean", "unguided/clean"]  # the configured level is the run's own
    assert STUDY_SETS.models_of("dda/fog") == ["source", "finetuned", "finetuned-generated"]
    assert STUDY_SETS.models_of("target/fog") == ["source", "finetuned"]
    assert STUDY_SETS.models_of("dda/clean") == ["source", "finetuned"]  # f'_t at the configured level is f'
    assert STUDY_SETS.models_of("dda-t105/clean") == ["source", "finetuned", "finetuned-t105"]
    assert STUDY_SETS.models() == ["source", "finetuned", "finetuned-generated", "finetuned-t105"]


def test_studies_from_config():
    config = {
        "adaptation": {"respacing": 20, "steps": 10, "noise_index": "reference"},
        "studies": {
            "timesteps": {"enabled": True, "t": [100, 500], "matched_mod": True},
            "generated_only": {"enabled": True},
            "set_size": {"enabled": True, "images_per_class": [10, 50]},
            "fusions": {"enabled": False},
            "gda_aligned": {"enabled": True},
        },
    }
    studies = Studies.from_config(config, has_clean=True)
    assert studies.variants == {
        "SDA (f_c')": "finetuned-generated",
        "SDA (10 per class)": "finetuned-10pc",
        "SDA (50 per class)": "finetuned-50pc",
    }
    assert studies.subset_sizes == {"finetuned-10pc": 10, "finetuned-50pc": 50}
    assert studies.finetuned_models()[-2:] == ["finetuned-t105", "finetuned-gda"]
    assert studies.mod_timestep("finetuned-t105") == 105 and studies.scored() == {"gda_aligned"}
    assert studies.mod_timestep("finetuned-10pc") is None
    assert (studies.generated_only_label, studies.smallest_subset_label) == ("SDA (f_c')", "SDA (10 per class)")
    assert Studies.from_config(config, has_clean=False).sweep == ()  # ImageNet without val_root


def test_fusions_follow_their_definitions():
    p = np.array([[0.7, 0.3], [0.5, 0.5]], dtype=np.float32)  # raw image
    q = np.array([[0.2, 0.8], [0.1, 0.9]], dtype=np.float32)  # adapted image
    h = lambda x: -(x * np.log(x)).sum(1)  # noqa: E731
    np.testing.assert_allclose(fuse("sum", [p, q]), p + q)
    np.testing.assert_allclose(fuse("entropy_weighted", [p, q]), p * h(q)[:, None] + q * h(p)[:, None], rtol=1e-6)
    np.testing.assert_allclose(fuse("confidence_weighted", [p, q]), p * p.max(1)[:, None] + q * q.max(1)[:, None])
    assert fuse("entropy_select", [p, q]).tolist() == [q[0].tolist(), q[1].tolist()]  # q is surer in both rows
    assert fuse("confidence_select", [p, q]).argmax(1).tolist() == [1, 1]
    np.testing.assert_allclose(fuse("tuned_weight", [p, q], 0.25), 0.75 * p + 0.25 * q)
    with pytest.raises(ValueError, match="validation"):
        fuse("tuned_weight", [p, q])


def test_the_tuned_weight_prefers_the_reference_sum_on_ties():
    assert tune_weight(np.ones((2, len(WEIGHT_GRID)))) == 0.5
    accuracies = np.zeros((1, len(WEIGHT_GRID)))
    accuracies[0, 3] = 1
    assert tune_weight(accuracies) == WEIGHT_GRID[3]


def _predictions(tmp_path, rng, corruptions, n=200):
    """A prediction file where f' on the DDA image is right more often than f on the raw image."""
    arrays = {}
    for c in corruptions:
        labels = rng.integers(0, 3, n)
        for name in (f"target/{c}", f"dda/{c}"):
            arrays[labels_key(name)] = labels
        for model, name, skill in (
            ("source", f"target/{c}", 0.4),
            ("source", f"dda/{c}", 0.5),
            ("finetuned", f"dda/{c}", 0.7),
        ):
            logits = rng.normal(size=(n, 3)) + 3 * skill * np.eye(3)[labels]
            probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            arrays[predictions_key(model, name)] = probs.astype(np.float16)
    path = tmp_path / f"predictions-{len(list(tmp_path.iterdir()))}.npz"
    np.savez(path, **arrays)
    return {name: str(path) for c in corruptions for name in (f"target/{c}", f"dda/{c}")}


def test_the_tuned_weight_never_reads_the_test_corruptions(tmp_path):
    rng = np.random.default_rng(0)
    validation = _predictions(tmp_path, rng, ["saturate", "spatter"])
    methods, _ = run_methods({}, fusions=True)
    weights, grid = tuned_weights({"r": validation}, methods, ["saturate", "spatter"])
    # the same validation files beside two different (random) test sets: the same weights
    for seed in (1, 2):
        test = _predictions(tmp_path, np.random.default_rng(seed), ["fog"])
        again, _ = tuned_weights({"r": {**validation, **test}}, methods, ["saturate", "spatter"])
        assert again == weights
    assert set(weights["r"]) == {"DDA (tuned weight)", "SDA (tuned weight)"}
    assert grid.groupby("method").chosen.sum().tolist() == [1, 1]
    assert weights["r"]["SDA (tuned weight)"] > 0.5  # f' on the adapted image is the better term here


def test_paired_table_has_a_row_per_corruption_and_the_mean(tmp_path):
    rng = np.random.default_rng(0)
    correct = {
        "r": {
            (method, c): rng.random(400) < (0.7 if method == "SDA" else 0.5)
            for method in ("SDA", "DDA")
            for c in ("fog", "snow", "saturate")
        }
    }
    correct["r"]["SDA", "snow"] = correct["r"]["DDA", "snow"].copy()  # no difference on snow
    paired = paired_table(correct, [("SDA", "DDA")], ["fog", "snow"], ["saturate"])
    assert paired.corruption.tolist() == ["fog", "snow", "mean", "saturate", "mean"]
    fog, snow, mean = paired.iloc[0], paired.iloc[1], paired.iloc[2]
    assert mean.difference == pytest.approx((fog.difference + snow.difference) / 2)
    wins = corruption_wins(paired).iloc[0]
    assert (wins.ahead, wins.behind, wins.inconclusive, wins.corruptions) == (1, 0, 1, 2)


def _timestep_file(tmp_path):
    """f right on every clean image, losing more as t grows; f' and f'_t losing less."""
    n, arrays, labels = 300, {}, np.zeros(300, dtype=np.int64)
    rng = np.random.default_rng(0)
    right = np.eye(2, dtype=np.float16)[0][None].repeat(n, 0)
    sets = {"clean": {"source": 1.0, "finetuned": 1.0}}
    for t, level in ((105, "-t105"), (526, "")):
        for process in ("unguided", "dda"):
            sets[f"{process}{level}/clean"] = {
                "source": 0.9 - t / 1000,
                "finetuned": 0.95 - t / 2000,
                "finetuned-t105": 0.9,
            }
    for name, accuracy in sets.items():
        arrays[labels_key(name)] = labels
        for model, p in accuracy.items():
            hit = rng.random(n) < p
            arrays[predictions_key(model, name)] = np.where(hit[:, None], right, right[:, ::-1])
    np.savez(tmp_path / "t.npz", **arrays)
    levels = [(105, p, f"{p}-t105/clean", "finetuned-t105") for p in ("unguided", "dda")]
    levels += [(526, p, f"{p}/clean", "finetuned") for p in ("unguided", "dda")]
    return {"r": {name: str(tmp_path / "t.npz") for name in sets}}, levels


def test_timestep_tables_give_accuracy_the_misalignment_and_the_gains(tmp_path):
    files, levels = _timestep_file(tmp_path)
    correct = timestep_correctness(files, levels, matched=True)
    table = timestep_table(correct)
    assert set(table.t) == {0, 105, 526} and set(table.model) == {"source", "finetuned", "finetuned_t"}
    source = table[(table.model == "source") & (table.process == "unguided")].set_index("t").top1
    assert source[0] == 100 and source[0] > source[105] > source[526]
    gains = gain_table(correct).set_index(["process", "comparison", "t"])
    drop = gains.loc[("unguided", MISALIGNMENT, 526)]
    assert drop.difference == pytest.approx(source[526] - 100) and drop.ci_high < 0
    assert gains.loc[("dda", "finetuned - source", 526)].ci_low > 0
    # at the configured level f'_t is f' itself
    assert (
        gains.loc[("dda", "finetuned_t - source", 526)].difference
        == gains.loc[("dda", "finetuned - source", 526)].difference
    )


def test_claims_are_measured_with_verdicts(tmp_path):
    files, levels = _timestep_file(tmp_path)
    gains = gain_table(timestep_correctness(files, levels, matched=True))
    rows = []
    for comparison, difference, low, high in (
        ("SDA - DDA", 2.0, 1.0, 3.0),
        ("DDA - Source", -1.0, -2.0, -0.5),
        ("SDA - SDA (f_c')", 0.5, -0.5, 1.5),
    ):
        rows.append(["r", comparison, "test", "mean", 2, difference, low, high])
    for corruption, low in (("fog", 1.0), ("contrast", -3.0)):
        rows.append(["r", "SDA - DDA", "test", corruption, 1, low + 1, low, low + 2])
    paired = pd.DataFrame(
        rows, columns=["arch", "comparison", "split", "corruption", "corruptions", "difference", "ci_low", "ci_high"]
    )
    claims = claims_table(paired, gains, 526, matched=True, generated_only="SDA (f_c')").set_index("claim")
    assert "sda_on_gda_beats_gda" not in claims.index  # no GDA in this run
    with_gda = pd.concat(
        [paired, pd.DataFrame([["r", "SDA on GDA - GDA", "test", "mean", 2, 1.5, 0.5, 2.5]], columns=paired.columns)]
    )
    claim = claims_table(with_gda, gains, 526, matched=True).set_index("claim").loc["sda_on_gda_beats_gda"]
    assert (claim.verdict, claim.measured, claim.detail) == (HOLDS, 1.5, "SDA on GDA - GDA")
    assert claims.loc["sda_beats_dda", "verdict"] == HOLDS
    assert claims.loc["dda_beats_source", "verdict"] == FAILS
    assert claims.loc["mod_beats_generated_only", "verdict"] == INCONCLUSIVE
    assert claims.loc["sda_beats_dda_per_corruption", "measured"] == 1  # ahead on fog; behind on contrast
    assert claims.loc["sda_beats_dda_per_corruption", "verdict"] == HOLDS  # all but one
    assert claims.loc["misalignment", "verdict"] == HOLDS and claims.loc["misalignment", "measured"] > 0
    assert claims.loc["dda_costs_clean", "detail"] == "t = 526"
    assert "few_images_suffice" not in claims.index  # the set-size study is off


def test_a_class_balanced_subset_takes_the_first_images_of_each_class():
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2])
    assert class_balanced_subset(labels, 2, 3).tolist() == [0, 1, 2, 3, 6, 7]
    with pytest.raises(ValueError, match="class 2 has 2 images"):
        class_balanced_subset(labels, 3, 3)


def test_the_summary_over_seeds_gives_the_spread_and_the_verdict_counts(tmp_path):
    from sda_core.seed_runs import seed_folder, seeds_summary

    assert seed_folder("results", 0) == "results" and seed_folder("results", 2) == "results/seed-2"
    paths = {}
    for seed, (value, verdict) in enumerate([(3.4, "holds"), (11.3, "holds"), (-0.5, "inconclusive")]):
        rows = [["sda_beats_dda", "r", "SDA - DDA > 0", "+2.8", value, value - 0.5, value + 0.5, verdict, ""]]
        columns = ["claim", "arch", "statement", "paper", "measured", "ci_low", "ci_high", "verdict", "detail"]
        paths[seed] = tmp_path / f"{seed}.csv"
        pd.DataFrame(rows, columns=columns).to_csv(paths[seed], index=False)
    row = seeds_summary(paths).iloc[0]
    assert row.seeds == 3 and row["mean"] == pytest.approx(np.mean([3.4, 11.3, -0.5]))
    assert row.sd == pytest.approx(np.std([3.4, 11.3, -0.5], ddof=1)) and (row["min"], row["max"]) == (-0.5, 11.3)
    assert (row.holds, row.inconclusive, row.does_not_hold) == (2, 1, 0)
    assert row.per_seed.startswith("seed 0: +3.4 [+2.9, +3.9]; seed 1: +11.3")


def test_sda_on_gda_is_scored_where_gda_runs_and_its_aligned_row_only_with_its_study():
    """GDA's own adapted sets are made wherever GDA runs, whatever reverse processes the run makes (a run
    without DiffPure keeps SDA on GDA); the f'_GDA row needs studies.gda_aligned."""
    methods, comparisons = run_methods({}, False, {"gda": ["r"]}, processes=["dda"])
    assert "SDA on GDA" in methods and "DiffPure" not in methods
    assert {("SDA on GDA", "GDA"), ("SDA on GDA", "SDA")} <= set(comparisons)
    assert "SDA on GDA (f'_GDA)" not in methods
    methods, comparisons = run_methods({}, False, {"gda": ["r"]}, processes=["dda"], studies={"gda_aligned"})
    assert methods["SDA on GDA (f'_GDA)"].terms[1][0] == "finetuned-gda"
    assert methods["SDA on GDA (f'_GDA)"].terms[1][1]("fog") == "gda/fog"
    assert ("SDA on GDA (f'_GDA)", "SDA on GDA") in comparisons
    assert "SDA on GDA" not in run_methods({}, False, {"gda": []})[0]  # GDA made for no architecture
