"""The paper's reported figures, the one owner of them in code (docs quote them for reading).

Mean top-1 (%) over the 15 ImageNet-C corruptions at severity 5, all 50,000 images each, as the
authors' repository reports them. Swin-T's Source figure is 33.1 there and 33.5 in a summary of the
paper; the repository's is kept. "-": not reported (GDA for the -B models).
"""

from __future__ import annotations

import pandas as pd

METHODS = ("Source", "MEMO", "DiffPure", "GDA", "DDA", "SDA")
IMAGENET_C = {  # architecture (config.yaml's names) -> method -> mean top-1 (%)
    "resnet50": (18.7, 24.7, 16.8, 31.8, 29.7, 32.5),
    "swin_t": (33.1, 29.5, 24.8, 42.2, 40.0, 42.5),
    "convnext_t": (39.3, 37.8, 28.8, 44.8, 44.2, 47.0),
    "swin_b": (40.5, 37.0, 28.9, None, 44.5, 47.4),
    "convnext_b": (45.6, 45.8, 32.7, None, 49.4, 51.9),
}


def beside_the_paper(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's ImageNet-C figures beside a run's (its results/tables/imagenet_c.csv): one row per
    architecture and method, the run's mean over the test corruptions with its interval and n."""
    means = table[(table.corruption == "mean") & (table.split == "test")].set_index(["arch", "method"])
    rows = []
    for arch in dict.fromkeys([*IMAGENET_C, *means.index.get_level_values("arch")]):
        for method in dict.fromkeys([*METHODS, *means.loc[arch].index] if arch in means.index else METHODS):
            paper = dict(zip(METHODS, IMAGENET_C.get(arch, ()))).get(method)
            run = means.loc[(arch, method)] if (arch, method) in means.index else None
            if paper is None and run is None:
                continue
            rows.append(
                {
                    "arch": arch,
                    "method": method,
                    "paper": paper,
                    "run": None if run is None else run.top1,
                    "run_ci": None if run is None else f"[{run.ci_low:.1f}, {run.ci_high:.1f}]",
                    "run_n": None if run is None else int(run.n),
                }
            )
    return pd.DataFrame(rows)
