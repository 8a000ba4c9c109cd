"""Where the benchmark scripts keep what they measured: one dated CSV per run under benchmarks/results/,
named by benchmark and hardware, so figures quoted in the README and docs/ can be traced to the run they come from."""

from __future__ import annotations

import csv
import datetime
import os
import platform
import re
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def hardware(device: torch.device | None = None) -> str:
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def write_results(benchmark: str, rows: list[dict], device: torch.device | None = None) -> Path:
    """rows (one dict per measurement) -> benchmarks/results/<date>_<benchmark>_<hardware>.csv, with the
    date and the hardware as the first columns; returns the path."""
    today = datetime.date.today().isoformat()
    where = hardware(device)
    path = RESULTS / f"{today}_{benchmark}_{re.sub(r'[^A-Za-z0-9]+', '-', where).strip('-').lower()}.csv"
    RESULTS.mkdir(exist_ok=True)
    rows = [{"date": today, "hardware": where, **row} for row in rows]
    with path.open("w", newline="") as file:
        columns = list(dict.fromkeys(key for row in rows for key in row))  # every row's, first seen first
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten: {path.relative_to(RESULTS.parents[1])}")
    return path
