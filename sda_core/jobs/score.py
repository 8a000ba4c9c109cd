"""Stage: accuracy tables (long form, with 95% intervals), sanity figures and the per-corruption plot."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sda_core.ensemble import (
    GDA_METHODS,
    WEIGHT_GRID,
    Method,
    mean_interval,
    method_correct,
    method_labels,
    method_terms,
    paired_difference,
    run_methods,
    tune_weight,
    weight_hits,
    wilson_interval,
)
from sda_core.image_sets import (
    CLEAN,
    SYNTHETIC_GENERATED,
    SYNTHETIC_MOD,
    adapted,
    covered_images,
    image_set_of,
    labels_key,
    predictions_key,
)
from sda_core.store import read_predictions

log = logging.getLogger(__name__)

# (check, model, image set)
SOURCE_CLEAN = "source on clean test"
GENERATOR_AGREEMENT = "source agrees with generator label"
SANITY_CHECKS = [
    (SOURCE_CLEAN, "source", CLEAN),
    ("source on clean after unguided diffusion (misalignment)", "source", adapted("unguided", CLEAN)),
    ("source on clean after DDA", "source", adapted("dda", CLEAN)),
    ("fine-tuned on clean test", "finetuned", CLEAN),
    ("fine-tuned on clean after unguided diffusion", "finetuned", adapted("unguided", CLEAN)),
    ("fine-tuned on clean after DDA", "finetuned", adapted("dda", CLEAN)),
    (GENERATOR_AGREEMENT, "source", SYNTHETIC_GENERATED),
    ("source agrees with label after MoD", "source", SYNTHETIC_MOD),
]


def _row(correct: np.ndarray) -> dict:
    n, hits = int(correct.size), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"n": n, "top1": 100 * hits / n, "ci_low": 100 * low, "ci_high": 100 * high}


Correctness = dict[str, dict[tuple[str, str], np.ndarray]]  # arch -> (method, corruption) -> per image
# arch -> image set -> npz of the predict stage holding it; or predictions key -> prediction stores (MEMO)
PredictionFiles = dict[str, dict[str, str | list[str]]]


class PredictionReader(Mapping):
    """The predict stage's arrays of one architecture by key (sda_core.image_sets), read lazily; and
    MEMO's, from prediction stores, where `files` maps a whole predictions key to its stores.

    Only the arrays asked for are decompressed: at ImageNet scale a group file holds ~0.6 GB of softmax
    outputs, and with predict.jobs: per_architecture every set is in the same file. A key whose set or
    array is missing raises, naming both: a renamed set must not drop a row silently. The labels of
    prediction stores must be those of the set's images they cover (image_sets.covered_images), else
    the rows do not belong to those images.
    """

    def __init__(self, files: dict[str, str | list[str]]):
        self.files = files
        self._open: dict[str, np.lib.npyio.NpzFile] = {}
        self._stores: dict[str, np.ndarray] = {}

    def _from_stores(self, key: str) -> np.ndarray:
        if key not in self._stores:
            probabilities, labels = read_predictions(self.files[key])
            every = self[labels_key(image_set_of(key))]
            expected = every[covered_images(len(every), len(labels))]
            if len(labels) > len(every) or not np.array_equal(labels, expected):
                raise ValueError(f"the labels of {', '.join(self.files[key])} are not those of {image_set_of(key)}")
            self._stores[key] = probabilities
        return self._stores[key]

    def __getitem__(self, key: str) -> np.ndarray:
        if not isinstance(self.files.get(key, ""), str):
            return self._from_stores(key)
        image_set = image_set_of(key)
        if image_set not in self.files:
            raise KeyError(f"no prediction file holds image set {image_set!r} (known: {', '.join(self.files)})")
        path = self.files[image_set]
        if path not in self._open:
            self._open[path] = np.load(path)
        if key not in self._open[path]:
            raise KeyError(f"{path} has no array {key!r}: was it written for another set of image sets?")
        return self._open[path][key]

    def __iter__(self):
        return iter(self.keys_available())

    def __len__(self) -> int:
        return len(self.keys_available())

    def keys_available(self) -> list[str]:
        """Every predictions key of the files (opens them all)."""
        keys = [key for key, paths in self.files.items() if not isinstance(paths, str)]
        for path in dict.fromkeys(p for p in self.files.values() if isinstance(p, str)):
            if path not in self._open:
                self._open[path] = np.load(path)
            keys += [k for k in self._open[path].files if not k.startswith("labels/")]
        return keys

    def close(self) -> None:
        for arrays in self._open.values():
            arrays.close()
        self._open.clear()
        self._stores.clear()

    def __enter__(self) -> PredictionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


Weights = dict[str, dict[str, float]]  # arch -> tuned_weight method -> its weight


def tuned_weights(
    prediction_files: PredictionFiles, methods: dict[str, Method], validation: list[str]
) -> tuple[Weights, pd.DataFrame]:
    """The weight of every tuned_weight method, chosen on the validation corruptions only (the test
    corruptions are not read), and the grid it was chosen from (long form: arch, method, weight,
    validation_top1, chosen)."""
    tuned = [name for name, method in methods.items() if method.fusion == "tuned_weight"]
    weights: Weights = {}
    rows = []
    for arch, files in prediction_files.items():
        weights[arch] = {}
        for name in tuned:
            accuracies = []
            for c in validation:
                with PredictionReader(files) as arrays:
                    labels = method_labels(arrays, methods[name], c)
                    accuracies.append(weight_hits(method_terms(arrays, methods[name], c), labels) / labels.size)
            accuracies = np.array(accuracies)
            weights[arch][name] = tune_weight(accuracies)
            rows += [
                {
                    "arch": arch,
                    "method": name,
                    "weight": w,
                    "validation_top1": 100 * accuracies[:, k].mean(),
                    "chosen": w == weights[arch][name],
                }
                for k, w in enumerate(WEIGHT_GRID)
            ]
    return weights, pd.DataFrame(rows, columns=["arch", "method", "weight", "validation_top1", "chosen"])


def correctness(
    prediction_files: PredictionFiles,
    corruptions: list[str],
    methods: dict[str, Method],
    weights: Weights,
    not_run: dict[str, set[str]] | None = None,
) -> Correctness:
    """Per-image correctness of every method on every corruption, computed once for all tables
    (files opened per corruption, so at most one corruption's arrays are held at a time). not_run:
    arch -> methods the run does not make for it (GDA outside gda.architectures); the tables leave
    their rows and comparisons out."""
    correct: Correctness = {}
    for arch, files in prediction_files.items():
        correct[arch] = {}
        run = {name: method for name, method in methods.items() if name not in (not_run or {}).get(arch, set())}
        for c in corruptions:
            with PredictionReader(files) as arrays:
                correct[arch].update(
                    {
                        (name, c): method_correct(arrays, method, c, weights.get(arch, {}).get(name))
                        for name, method in run.items()
                    }
                )
    return correct


def gda_not_run(archs: list[str], gda_archs: list[str]) -> dict[str, set[str]]:
    """arch -> the GDA methods not made for it (gda.architectures)."""
    return {arch: set(GDA_METHODS) for arch in archs if arch not in gda_archs}


def accuracy_table(correct: Correctness, test: list[str], validation: list[str], severity: int) -> pd.DataFrame:
    rows = []
    for arch, by_method in correct.items():
        for method in dict.fromkeys(method for method, _ in by_method):
            for split, corruptions in (("test", test), ("validation", validation)):
                split_rows = [
                    {
                        "arch": arch,
                        "method": method,
                        "corruption": c,
                        "split": split,
                        "severity": severity,
                        **_row(by_method[method, c]),
                    }
                    for c in corruptions
                ]
                rows += split_rows
                if split_rows:
                    accuracies = [r["top1"] / 100 for r in split_rows]
                    low, high = mean_interval(accuracies, [r["n"] for r in split_rows])
                    rows.append(
                        {
                            "arch": arch,
                            "method": method,
                            "corruption": "mean",
                            "split": split,
                            "severity": severity,
                            "n": sum(r["n"] for r in split_rows),
                            "top1": 100 * float(np.mean(accuracies)),
                            "ci_low": 100 * low,
                            "ci_high": 100 * high,
                        }
                    )
    return pd.DataFrame(rows)


def corruption_groups(test: list[str], validation: list[str]):
    """(split, corruption, members) for each row of a per-corruption table: every corruption of a split on
    its own, then the split's "mean" over all of them (no rows for an empty split)."""
    for split, corruptions in (("test", test), ("validation", validation)):
        if corruptions:
            yield from ((split, c, [c]) for c in corruptions)
            yield split, "mean", list(corruptions)


def paired_difference_table(
    by_arch: dict, comparisons, test: list[str], validation: list[str], difference
) -> pd.DataFrame:
    """The long-form table of paired differences, one row per (arch, comparison, split, corruption or
    "mean"). by_arch: arch -> (method, corruption) -> what `difference(first_sets, second_sets)` compares,
    which returns (difference, ci_low, ci_high) in points; a comparison of a method not run for an
    architecture is left out."""
    rows = []
    for arch, by_method in by_arch.items():
        for first, second in comparisons:
            for split, corruption, members in corruption_groups(test, validation):
                if not {(first, members[0]), (second, members[0])} <= by_method.keys():
                    continue  # not both run for this architecture (correctness' not_run)
                value, low, high = difference(
                    [by_method[first, c] for c in members], [by_method[second, c] for c in members]
                )
                rows.append(
                    {
                        "arch": arch,
                        "comparison": f"{first} - {second}",
                        "split": split,
                        "corruption": corruption,
                        "corruptions": len(members),
                        "difference": value,
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return pd.DataFrame(rows)


def paired_table(
    correct: Correctness, comparisons: list[tuple[str, str]], test: list[str], validation: list[str]
) -> pd.DataFrame:
    """Differences between methods (first minus second, percentage points), paired over the same images:
    a row per corruption, then the mean over the split's corruptions (corruption "mean")."""

    def points(first, second):
        return tuple(100 * value for value in paired_difference(first, second))

    return paired_difference_table(correct, comparisons, test, validation, points)


def corruption_wins(paired: pd.DataFrame, comparison: str = "SDA - DDA", split: str = "test") -> pd.DataFrame:
    """Per architecture: on how many single corruptions the first method is ahead with the paired
    interval above zero, behind with it below zero, or neither (the interval covers zero)."""
    rows = paired[(paired.comparison == comparison) & (paired.split == split) & (paired.corruption != "mean")]
    return pd.DataFrame(
        [
            {
                "arch": arch,
                "comparison": comparison,
                "ahead": int((part.ci_low > 0).sum()),
                "behind": int((part.ci_high < 0).sum()),
                "inconclusive": int(((part.ci_low <= 0) & (part.ci_high >= 0)).sum()),
                "corruptions": len(part),
                "behind_on": ", ".join(part.corruption[part.ci_high < 0]),
            }
            for arch, part in rows.groupby("arch", sort=False)
        ]
    )


def set_correct(arrays: Mapping[str, np.ndarray], model: str, image_set: str) -> np.ndarray:
    """Per-image correctness of one model on one image set, from the predict stage's arrays."""
    return arrays[predictions_key(model, image_set)].argmax(1) == arrays[labels_key(image_set)]


def sanity_table(prediction_files: PredictionFiles, has_clean: bool) -> pd.DataFrame:
    """The sanity checks, those on the clean set only where the run has one; a missing set raises."""
    rows = []
    for arch, files in prediction_files.items():
        with PredictionReader(files) as arrays:
            for check, model, images in SANITY_CHECKS:
                if CLEAN in images.split("/") and not has_clean:
                    continue
                rows.append({"arch": arch, "check": check, **_row(set_correct(arrays, model, images))})
    return pd.DataFrame(rows)


PLOTTED_METHODS = ["Source", "MEMO", "DiffPure", "GDA", "DDA", "SDA", "DDA (adapted only)", "SDA (adapted only)"]


def plot_accuracy(
    table: pd.DataFrame, output: str, title: str, value: str = "top1", axis_label: str = "top-1 (%)"
) -> None:
    """Bars of the table's `value` column (top-1, or mIoU for segmentation) per test corruption and
    method, with their intervals; a panel per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = table[(table.split == "test") & table.method.isin(PLOTTED_METHODS)]
    archs = list(dict.fromkeys(test.arch))
    methods = list(dict.fromkeys(test.method))
    corruptions = list(dict.fromkeys(test.corruption))
    fig, axes = plt.subplots(len(archs), 1, figsize=(max(10, 0.9 * len(corruptions)), 3.6 * len(archs)), squeeze=False)
    width = 0.8 / len(methods)
    for ax, arch in zip(axes[:, 0], archs):
        for k, method in enumerate(methods):
            part = test[(test.arch == arch) & (test.method == method)].set_index("corruption")
            if part.empty:  # not run for this architecture (GDA outside gda.architectures)
                continue
            part = part.loc[corruptions]
            x = np.arange(len(corruptions)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(
                x,
                part[value],
                width,
                label=method,
                color=f"C{k}",  # one colour per method in every panel, also where a method is left out
                yerr=[part[value] - part.ci_low, part.ci_high - part[value]],
                error_kw={"elinewidth": 0.6},
            )
        ax.set_xticks(np.arange(len(corruptions)), corruptions, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel(axis_label)
        ax.set_ylim(0, 100)
        ax.set_title(f"{title}: {arch}")
        ax.grid(axis="y", alpha=0.3)
    legend = {}  # every method once, also one the first panel's architecture does not run
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[0, 0].legend(legend.values(), legend.keys(), ncol=len(methods), fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def score_job(
    prediction_files: PredictionFiles,
    test: list[str],
    validation: list[str],
    severity: int,
    has_clean: bool,
    table_output: str,
    paired_output: str,
    sanity_output: str,
    plot_output: str,
    title: str,
    variants: dict[str, str] | None = None,
    fusions: bool = False,
    fusion_output: str | None = None,
    memo: bool = False,
    gda_archs: list[str] = (),
) -> None:
    """variants: method label -> fine-tuned model of a study (sda_core.studies); fusions: add the
    fusion methods, whose tuned weight (and its grid, to fusion_output) comes from `validation` only;
    memo: score MEMO's predictions, gda_archs: GDA's of these architectures (prediction_files holds
    their stores)."""
    methods, comparisons = run_methods(variants or {}, fusions, memo, bool(gda_archs))
    weights, grid = tuned_weights(prediction_files, methods, validation)
    if fusion_output is not None:
        grid.to_csv(fusion_output, index=False, float_format="%.2f")
    not_run = gda_not_run(list(prediction_files), list(gda_archs))
    correct = correctness(prediction_files, test + validation, methods, weights, not_run)
    table = accuracy_table(correct, test, validation, severity)
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_table(correct, comparisons, test, validation)
    paired.to_csv(paired_output, index=False, float_format="%.2f")
    sanity = sanity_table(prediction_files, has_clean)
    sanity.to_csv(sanity_output, index=False, float_format="%.2f")
    plot_accuracy(table, plot_output, title)
    means = table[(table.corruption == "mean") & (table.split == "test")]
    log.info(
        "mean top-1 over the test corruptions:\n%s",
        means.pivot(index="arch", columns="method", values="top1").round(1).T.to_string(),
    )
    if weights:
        log.info("weights tuned on the validation corruptions: %s", weights)
    log.info("paired differences, means:\n%s", paired[paired.corruption == "mean"].round(2).to_string(index=False))
    for row in corruption_wins(paired).itertuples():
        log.info(
            "%s: %s ahead with the paired interval above zero on %d of %d test corruptions, behind on %d (%s), "
            "inconclusive on %d",
            row.arch,
            row.comparison,
            row.ahead,
            row.corruptions,
            row.behind,
            row.behind_on or "none",
            row.inconclusive,
        )
    log.info("sanity:\n%s", sanity.round(1).to_string(index=False))


def score_target_job(
    prediction_files: PredictionFiles,
    target: str,
    table_output: str,
    paired_output: str,
    variants: dict[str, str] | None = None,
    memo: bool = False,
    gda_archs: list[str] = (),
) -> None:
    """The tables of a named target set: each method's accuracy (long form: arch, method, target, n,
    top1, ci_low, ci_high) and the paired comparisons. The fusions are left out: their tuned weight
    belongs to the corruptions' validation split."""
    methods, comparisons = run_methods(variants or {}, False, memo, bool(gda_archs))
    not_run = gda_not_run(list(prediction_files), list(gda_archs))
    correct = correctness(prediction_files, [target], methods, {}, not_run)
    table = accuracy_table(correct, [target], [], severity=0)
    table = (
        table[table.corruption != "mean"].drop(columns=["split", "severity"]).rename(columns={"corruption": "target"})
    )
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_table(correct, comparisons, [target], [])
    paired = paired[paired.corruption != "mean"].drop(columns=["split", "corruptions"])
    paired.rename(columns={"corruption": "target"}).to_csv(paired_output, index=False, float_format="%.2f")
    log.info("%s, top-1:\n%s", target, table.pivot(index="arch", columns="method", values="top1").round(1).T)
