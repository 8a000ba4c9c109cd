"""The timestep study's tables and plot (docs/method.md#studies). Clean images re-noised from each level t and
denoised (unguided, and with DDA's guidance towards the clean image), scored by f, by f' (MoD at the
configured start) and, with matched MoD, by f'_t (MoD from the same t): the misalignment curve and the
alignment gain f' - f, f'_t - f per t with paired intervals. t = 0 rows are the clean images themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sda_core.ensemble import paired_difference, wilson_interval
from sda_core.image_sets import CLEAN, FINETUNED, SOURCE
from sda_core.scoring.accuracy import set_correct
from sda_core.scoring.predictions import PredictionFiles, PredictionReader

MATCHED = "finetuned_t"  # the model column of f'_t (fine-tuned on MoD from the row's t)
Level = tuple[int, str, str, str]  # (t, process, clean image set after it, f'_t of the level)


def timestep_correctness(
    prediction_files: PredictionFiles, levels: list[Level], matched: bool
) -> dict[tuple[str, str, str, int], np.ndarray]:
    """(arch, model column, process, t) -> per-image correctness; the clean set as t = 0 of each process."""
    correct = {}
    for arch, files in prediction_files.items():
        with PredictionReader(files) as arrays:
            for process in dict.fromkeys(process for _, process, _, _ in levels):
                for model in (SOURCE, FINETUNED, *([MATCHED] if matched else [])):
                    clean_model = FINETUNED if model == MATCHED else model
                    correct[arch, model, process, 0] = set_correct(arrays, clean_model, CLEAN)
            for t, process, image_set, matched_model in levels:
                correct[arch, SOURCE, process, t] = set_correct(arrays, SOURCE, image_set)
                correct[arch, FINETUNED, process, t] = set_correct(arrays, FINETUNED, image_set)
                if matched:
                    correct[arch, MATCHED, process, t] = set_correct(arrays, matched_model, image_set)
    return correct


def timestep_table(correct: dict) -> pd.DataFrame:
    rows = []
    for (arch, model, process, t), hits in correct.items():
        low, high = wilson_interval(int(hits.sum()), hits.size)
        rows.append(
            {
                "arch": arch,
                "model": model,
                "process": process,
                "t": t,
                "n": hits.size,
                "top1": 100 * hits.mean(),
                "ci_low": 100 * low,
                "ci_high": 100 * high,
            }
        )
    return pd.DataFrame(rows).sort_values(["arch", "process", "model", "t"], kind="stable").reset_index(drop=True)


MISALIGNMENT = f"{SOURCE} - {SOURCE} on clean"  # the comparison of f after diffusion with f on the clean images


def gain_table(correct: dict) -> pd.DataFrame:
    """Per (arch, process, t), paired over the same images: f' - f and f'_t - f (the alignment gains),
    and f - f on the clean images (the misalignment: accuracy lost to the diffusion)."""
    rows = []
    for (arch, model, process, t), hits in correct.items():
        if t == 0:
            continue
        baseline = correct[arch, SOURCE, process, 0 if model == SOURCE else t]
        diff, low, high = paired_difference([hits], [baseline])
        rows.append(
            {
                "arch": arch,
                "process": process,
                "t": t,
                "comparison": MISALIGNMENT if model == SOURCE else f"{model} - {SOURCE}",
                "n": hits.size,
                "difference": 100 * diff,
                "ci_low": 100 * low,
                "ci_high": 100 * high,
            }
        )
    return pd.DataFrame(rows).sort_values(["arch", "process", "comparison", "t"], kind="stable").reset_index(drop=True)


def plot_timesteps(table: pd.DataFrame, output: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(dict.fromkeys(table.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 4.2), squeeze=False)
    styles = {"unguided": "--", "dda": "-"}
    colours = {SOURCE: "tab:blue", FINETUNED: "tab:orange", MATCHED: "tab:green"}
    labels = {SOURCE: "f (source)", FINETUNED: "f' (MoD at the configured t)", MATCHED: "f'_t (MoD from the same t)"}
    for ax, arch in zip(axes[0], archs):
        part = table[table.arch == arch]
        for (process, model), line in part.groupby(["process", "model"], sort=False):
            line = line.sort_values("t")
            ax.plot(
                line.t, line.top1, styles.get(process, "-"), color=colours[model], label=f"{labels[model]}, {process}"
            )
            ax.fill_between(line.t, line.ci_low, line.ci_high, color=colours[model], alpha=0.12)
        ax.set_xlabel("t (noise level the clean images are re-noised to)")
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{title}: {arch}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
