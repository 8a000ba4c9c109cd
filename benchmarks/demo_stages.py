"""Per-stage time and memory of a finished run, from its Snakemake `benchmark:` files, written to
benchmarks/results/<date>_demo_stages_<hardware>.csv (what the README's `make demo` table quotes).

    python benchmarks/demo_stages.py                 # after `make demo`, from the repository root
    python benchmarks/demo_stages.py --wall 311      # also record the run's wall time (seconds)
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from record import write_results


def stage_of(path: Path, root: Path) -> str:
    """adapt/<process>/... -> "adapt/<process>"; every other rule is its own stage."""
    parts = path.relative_to(root).with_suffix("").parts
    return f"adapt/{parts[1]}" if parts[0] == "adapt" else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--wall", type=float, default=None, help="wall-clock seconds of the whole run")
    args = parser.parse_args()
    jobs: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    peak_rss: dict[str, float] = defaultdict(float)
    for path in sorted(args.benchmarks.rglob("*.tsv")):
        with path.open() as file:
            row = next(csv.DictReader(file, delimiter="\t"))
        stage = stage_of(path, args.benchmarks)
        jobs[stage] += 1
        seconds[stage] += float(row["s"])
        peak_rss[stage] = max(peak_rss[stage], float(row["max_rss"]))
    if not jobs:
        parser.error(f"no benchmark files under {args.benchmarks}")
    rows = [
        {"stage": stage, "jobs": jobs[stage], "seconds": round(seconds[stage]), "peak_rss_mb": round(peak_rss[stage])}
        for stage in sorted(jobs, key=seconds.get, reverse=True)
    ]
    if args.wall is not None:
        rows.append({"stage": "whole run (wall clock)", "jobs": "", "seconds": round(args.wall), "peak_rss_mb": ""})
    print(f"{'stage':28s}{'jobs':>6s}{'seconds':>9s}{'peak RSS (MB)':>15s}")
    for row in rows:
        print(f"{row['stage']:28s}{row['jobs']!s:>6s}{row['seconds']:>9}{row['peak_rss_mb']!s:>15s}")
    write_results("demo_stages", rows)


if __name__ == "__main__":
    main()
