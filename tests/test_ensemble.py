import numpy as np
import pytest

from sda_core.ensemble import mean_interval, method_correct, wilson_interval
from sda_core.methods import METHODS


def test_ensembles_sum_softmaxes_of_the_right_models():
    labels = np.array([0, 1])
    predictions = {
        "labels/target/fog": labels,
        "labels/dda/fog": labels,
        "labels/diffpure/fog": labels,
        "source/target/fog": np.array([[0.6, 0.4], [0.9, 0.1]]),
        "source/dda/fog": np.array([[0.1, 0.9], [0.2, 0.8]]),
        "finetuned/dda/fog": np.array([[0.3, 0.7], [0.0, 1.0]]),
        "source/diffpure/fog": np.array([[0.9, 0.1], [0.4, 0.6]]),
    }
    assert method_correct(predictions, METHODS["Source"], "fog").tolist() == [True, False]
    assert method_correct(predictions, METHODS["DDA"], "fog").tolist() == [False, False]  # 0.7/1.3, 1.1/0.9
    assert method_correct(predictions, METHODS["SDA"], "fog").tolist() == [False, True]  # 0.9/1.1, 0.9/1.1
    assert method_correct(predictions, METHODS["DiffPure"], "fog").tolist() == [True, True]
    assert method_correct(predictions, METHODS["SDA (adapted only)"], "fog").tolist() == [False, True]


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)


def test_mean_interval_shrinks_with_more_corruptions():
    narrow = mean_interval([0.5] * 15, [1000] * 15)
    wide = mean_interval([0.5], [1000])
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert sum(narrow) / 2 == pytest.approx(0.5)


def test_paired_difference_is_tighter_than_unpaired_intervals():
    from sda_core.ensemble import paired_difference

    rng = np.random.default_rng(0)
    first = [rng.random(500) < 0.6 for _ in range(3)]
    second = [a & (rng.random(500) < 0.95) for a in first]  # the same images, a few more errors
    diff, low, high = paired_difference(first, second)
    expected = np.mean([a.mean() - b.mean() for a, b in zip(first, second)])
    assert diff == pytest.approx(expected)
    assert 0 < low < diff < high
    unpaired = mean_interval([a.mean() for a in first], [500] * 3)
    assert high - low < (unpaired[1] - unpaired[0])


def test_mean_interval_stays_in_the_unit_range():
    low, high = mean_interval([0.0, 0.05, 0.0, 0.05], [20] * 4)  # a normal interval gives low < 0
    assert 0 <= low < 0.025 < high <= 1
    low, high = mean_interval([1.0, 0.95], [20, 20])
    assert 0.975 < high <= 1
    low, high = mean_interval([0.0, 0.0], [20, 20])
    assert low == pytest.approx(0, abs=1e-12) and 0 < high < 0.1  # the pooled 40 images


def test_memo_rows_cover_evenly_spaced_images_and_pair_with_those(tmp_path):
    """MEMO with memo.images: its rows are images 0, 1, 3 of a 5-image set (image_sets.covered_images),
    scored and paired on those."""
    from sda_core.ensemble import paired_difference

    MEMO_METHOD = METHODS["MEMO"]
    from sda_core.image_sets import covered_images
    from sda_core.scoring.predictions import PredictionReader
    from sda_core.store import PROBABILITIES, fill_store

    assert covered_images(5, 3).tolist() == [0, 1, 3] and covered_images(5, None).tolist() == [0, 1, 2, 3, 4]
    labels = np.array([0, 1, 1, 0, 1])
    npz = tmp_path / "fog.npz"
    np.savez(npz, **{"labels/target/fog": labels, "source/target/fog": np.eye(2)[[0, 0, 1, 1, 1]]})
    rows = np.eye(2, dtype=np.float16)[[0, 1, 1]]  # on images 0, 1, 3: right, right, wrong

    def memo_store(path, store_labels):
        fill_store(path, 3, (2,), 2, {}, lambda lo, hi: (rows[lo:hi], store_labels[lo:hi]), array=PROBABILITIES)
        return [str(path)]

    files = {"target/fog": str(npz), "memo/target/fog": memo_store(tmp_path / "memo.zarr", labels[[0, 1, 3]])}
    with PredictionReader(files) as arrays:
        memo = method_correct(arrays, MEMO_METHOD, "fog")
        source = method_correct(arrays, METHODS["Source"], "fog")
        assert "memo/target/fog" in arrays.keys_available()
    assert memo.tolist() == [True, True, False] and source.tolist() == [True, False, True, False, True]
    diff, _, _ = paired_difference([memo], [source])
    assert diff == pytest.approx(1 / 3)  # 2 of 3 against Source's 1 of 3 on images 0, 1, 3 (not 2/3 - 3/5)
    files["memo/target/fog"] = memo_store(tmp_path / "shifted.zarr", labels[:3])  # images 0, 1, 2: not its rows
    with PredictionReader(files) as arrays, pytest.raises(ValueError, match="not those of target/fog"):
        method_correct(arrays, MEMO_METHOD, "fog")


def test_wilson_interval_contains_its_proportion_at_the_ends():
    """At 6 of 6 the upper end is 1 in exact arithmetic; rounding must not put it below (a plot's error
    bar of negative length failed the run)."""
    for n in range(1, 300):
        low, high = wilson_interval(n, n)
        assert low <= 1.0 == high
        low, high = wilson_interval(0, n)
        assert low == 0.0 <= high


def test_gda_ensemble_selects_the_lower_entropy_prediction_on_the_images_gda_covers():
    """GDA's code's ensemble: the raw image's prediction where its entropy is lower than the adapted
    image's, else the adapted one; with gda.images, on GDA's images only (rows 0, 1, 3 of 5)."""
    GDA_METHODS = {name: METHODS[name] for name in ("GDA", "GDA (ensemble)")}

    labels = np.array([0, 1, 1, 0, 1])
    raw = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.3, 0.7], [0.5, 0.5]])
    gda = np.array([[0.4, 0.6], [0.2, 0.8], [0.55, 0.45]])  # on images 0, 1, 3
    predictions = {"labels/target/fog": labels, "source/target/fog": raw, "gda/target/fog": gda}
    # image 0: raw confident and right (H 0.33 < 0.67); image 1: GDA more confident (0.50 < 0.67), right;
    # image 3: GDA right but less confident (H 0.688) than raw (H 0.611), so raw's wrong answer
    assert method_correct(predictions, GDA_METHODS["GDA (ensemble)"], "fog").tolist() == [True, True, False]
    assert method_correct(predictions, GDA_METHODS["GDA"], "fog").tolist() == [False, True, True]


def test_the_score_plot_leaves_out_a_method_an_architecture_does_not_run(tmp_path):
    """gda.architectures may name some architectures only (config.yaml: three of five): the plot of the
    score job must draw the others without GDA, not fail after the tables are written."""
    from sda_core.scoring.accuracy import accuracy_table
    from sda_core.scoring.plots import plot_accuracy

    rng = np.random.default_rng(0)
    correct = {
        arch: {(method, c): rng.random(20) < 0.5 for method in methods for c in ("fog", "snow")}
        for arch, methods in (("a", ("Source", "GDA", "DDA")), ("b", ("Source", "DDA")))
    }
    table = accuracy_table(correct, ["fog", "snow"], [], severity=5)
    plot_accuracy(table, str(tmp_path / "plot.png"), "test")
    assert (tmp_path / "plot.png").stat().st_size > 5_000
