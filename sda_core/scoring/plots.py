"""The per-corruption plot: a bar per method with its interval, a panel per architecture."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sda_core.methods import PLOTTED_METHODS


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
