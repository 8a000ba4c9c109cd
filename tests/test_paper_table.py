"""The paper's table beside a run's (tools/paper_table.py, sda_core.paper)."""

import subprocess
import sys

import pandas as pd
from workflow_helpers import ROOT

from sda_core.paper import beside_the_paper


def run_table(rows):
    columns = ["arch", "method", "corruption", "split", "severity", "n", "top1", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


def test_the_run_is_printed_beside_the_paper_per_architecture_and_method(tmp_path):
    table = run_table(
        [
            ["swin_t", "SDA", "mean", "test", 5, 750000, 42.31, 42.2, 42.4],
            ["swin_t", "SDA", "fog", "test", 5, 50000, 50.0, 49.6, 50.4],  # not a mean: not shown
            ["swin_t", "SDA", "mean", "validation", 5, 200000, 45.0, 44.8, 45.2],  # not the test split
            ["swin_t", "SDA (adapted only)", "mean", "test", 5, 750000, 38.0, 37.9, 38.1],
        ]
    )
    side = beside_the_paper(table).set_index(["arch", "method"])
    assert side.loc[("swin_t", "SDA")].tolist() == [42.5, 42.31, "[42.2, 42.4]", 750000]
    assert side.loc[("swin_t", "Source"), "paper"] == 33.1 and pd.isna(side.loc[("swin_t", "Source"), "run"])
    assert side.loc[("swin_t", "SDA (adapted only)"), "run"] == 38.0  # a row of the run only
    assert ("swin_b", "GDA") not in side.index  # reported by neither
    table.to_csv(tmp_path / "imagenet_c.csv", index=False)
    printed = subprocess.run(
        [sys.executable, str(ROOT / "tools/paper_table.py"), str(tmp_path / "imagenet_c.csv")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "swin_t" in printed and "42.5" in printed and "42.3" in printed and "[42.2, 42.4]" in printed
