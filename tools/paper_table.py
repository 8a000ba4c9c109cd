"""Print the paper's ImageNet-C table beside a run's (sda_core.paper).

    python tools/paper_table.py results/tables/imagenet_c.csv

Per architecture and method: the paper's mean top-1 (%), the run's mean over the test corruptions,
its interval and the number of images it rests on. A run on a subset (imagenet.subset_file,
images_per_class) is not the paper's protocol: its n says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sda_core.paper import beside_the_paper  # noqa: E402


def main(path: str) -> None:
    side_by_side = beside_the_paper(pd.read_csv(path))
    print(side_by_side.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/tables/imagenet_c.csv")
