"""Stage: accuracy tables (long form, with 95% intervals), sanity figures and the per-corruption plot."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sda_core.ensemble import COMPARISONS, METHODS, mean_interval, method_correct, paired_difference, wilson_interval

log = logging.getLogger(__name__)

# (check, model, image set)
SANITY_CHECKS = [
    ("source on clean test", "source", "clean"),
    ("source on clean after unguided diffusion (misalignment)", "source", "unguided/clean"),
    ("source on clean after DDA", "source", "dda/clean"),
    ("fine-tuned on clean test", "finetuned", "clean"),
    ("fine-tuned on clean after unguided diffusion", "finetuned", "unguided/clean"),
    ("fine-tuned on clean after DDA", "finetuned", "dda/clean"),
    ("source agrees with generator label", "source", "synthetic/generated"),
    ("source agrees with label after MoD", "source", "synthetic/mod"),
]


def _row(correct: np.ndarray) -> dict:
    n, hits = int(correct.size), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"n": n, "top1": 100 * hits / n, "ci_low": 100 * low, "ci_high": 100 * high}


Correctness = dict[str, dict[tuple[str, str], np.ndarray]]  # arch -> (method, corruption) -> per image
PredictionFiles = dict[str, dict[str, str]]  # arch -> group of image sets -> npz of the predict stage


def correctness(prediction_files: PredictionFiles, corruptions: list[str]) -> Correctness:
    """Per-image correctness of every method on every corruption, computed once for all tables.

    Files are read lazily, only the arrays a corruption's methods use: at ImageNet scale a group file
    holds ~0.6 GB of softmax outputs, and with predict.jobs: per_architecture every corruption is in
    the same file.
    """
    correct: Correctness = {}
    for arch, files in prediction_files.items():
        correct[arch] = {}
        for c in corruptions:
            with np.load(files[c]) as arrays:
                correct[arch].update({(method, c): method_correct(arrays, method, c) for method in METHODS})
    return correct


def accuracy_table(correct: Correctness, test: list[str], validation: list[str], severity: int) -> pd.DataFrame:
    rows = []
    for arch, by_method in correct.items():
        for method in METHODS:
            for split, corruptions in (("test", test), ("validation", validation)):
                split_rows = [{"arch": arch, "method": method, "corruption": c, "split": split,
                               "severity": severity, **_row(by_method[method, c])}
                              for c in corruptions]
                rows += split_rows
                if split_rows:
                    accuracies = [r["top1"] / 100 for r in split_rows]
                    low, high = mean_interval(accuracies, [r["n"] for r in split_rows])
                    rows.append({"arch": arch, "method": method, "corruption": "mean", "split": split,
                                 "severity": severity, "n": sum(r["n"] for r in split_rows),
                                 "top1": 100 * float(np.mean(accuracies)), "ci_low": 100 * low,
                                 "ci_high": 100 * high})
    return pd.DataFrame(rows)


def paired_table(correct: Correctness, test: list[str], validation: list[str]) -> pd.DataFrame:
    """Differences between methods (first minus second, percentage points), paired over the same images."""
    rows = []
    for arch, by_method in correct.items():
        for first, second in COMPARISONS:
            for split, corruptions in (("test", test), ("validation", validation)):
                if not corruptions:
                    continue
                diff, low, high = paired_difference([by_method[first, c] for c in corruptions],
                                                    [by_method[second, c] for c in corruptions])
                rows.append({"arch": arch, "comparison": f"{first} - {second}", "split": split,
                             "corruptions": len(corruptions), "difference": 100 * diff, "ci_low": 100 * low,
                             "ci_high": 100 * high})
    return pd.DataFrame(rows)


def sanity_table(prediction_files: PredictionFiles) -> pd.DataFrame:
    rows = []
    for arch, files in prediction_files.items():
        for check, model, images in SANITY_CHECKS:
            group = "synthetic" if images.startswith("synthetic/") else "clean"
            if group not in files:
                continue
            with np.load(files[group]) as arrays:  # lazily: only the two arrays this check reads
                if f"{model}/{images}" in arrays:
                    correct = arrays[f"{model}/{images}"].argmax(1) == arrays[f"labels/{images}"]
                    rows.append({"arch": arch, "check": check, **_row(correct)})
    return pd.DataFrame(rows)


def plot_accuracy(table: pd.DataFrame, output: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = table[table.split == "test"]
    archs = list(dict.fromkeys(test.arch))
    methods = list(dict.fromkeys(test.method))
    corruptions = list(dict.fromkeys(test.corruption))
    fig, axes = plt.subplots(len(archs), 1, figsize=(max(10, 0.9 * len(corruptions)), 3.6 * len(archs)),
                             squeeze=False)
    width = 0.8 / len(methods)
    for ax, arch in zip(axes[:, 0], archs):
        for k, method in enumerate(methods):
            part = test[(test.arch == arch) & (test.method == method)].set_index("corruption").loc[corruptions]
            x = np.arange(len(corruptions)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, part.top1, width, label=method,
                   yerr=[part.top1 - part.ci_low, part.ci_high - part.top1], error_kw={"elinewidth": 0.6})
        ax.set_xticks(np.arange(len(corruptions)), corruptions, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{title}: {arch}")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=len(methods), fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def score_job(prediction_files: PredictionFiles, test: list[str], validation: list[str], severity: int,
              table_output: str, paired_output: str, sanity_output: str, plot_output: str, title: str) -> None:
    correct = correctness(prediction_files, test + validation)
    table = accuracy_table(correct, test, validation, severity)
    table.to_csv(table_output, index=False, float_format="%.2f")
    paired = paired_table(correct, test, validation)
    paired.to_csv(paired_output, index=False, float_format="%.2f")
    sanity = sanity_table(prediction_files)
    sanity.to_csv(sanity_output, index=False, float_format="%.2f")
    plot_accuracy(table, plot_output, title)
    means = table[(table.corruption == "mean") & (table.split == "test")]
    log.info("mean top-1 over the test corruptions:\n%s",
             means.pivot(index="arch", columns="method", values="top1").round(1).to_string())
    log.info("paired differences:\n%s", paired.round(2).to_string(index=False))
    log.info("sanity:\n%s", sanity.round(1).to_string(index=False))
