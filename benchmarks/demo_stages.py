"""Per-stage time and memory of a finished run, from its Snakemake `benchmark:` files, written to
benchmarks/results/<date>_demo_stages_<hardware>.csv (what docs/running-at-scale.md's `make demo` table quotes).

    python benchmarks/demo_stages.py                 # after `make demo`, from the repository root
    python benchmarks/demo_stages.py --wall 311      # also record the run's wall time (seconds)
    python benchmarks/demo_stages.py --benchmarks runs/digit_scenes/results/benchmarks --name scenes_stages
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from record import write_results

from sda_core.image_sets import FINETUNED, GENERATED_ONLY, parse_process


def stage_of(path: Path, root: Path) -> str:
    """adapt/<process>/... -> "adapt/<process>" (the timestep study's swept processes together; all of
    them with target_jobs: grouped);
    finetune/<model>/... -> the kind of fine-tuned model; MoD from other timesteps together; every
    other rule is its own stage."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[0] == "adapt":
        if parts[1] == "all":  # target_jobs: grouped
            return "adapt (every adapted set, one job per shard)"
        base, t = parse_process(parts[1])
        return f"adapt/{base}" + ("" if t is None else " (timestep study)")
    if parts[0] == "finetune" and parts[1] == "all":  # target_jobs: grouped
        return "finetune (every fine-tuned model, one job per architecture)"
    if parts[0] == "mod" and parts[1] == "all":
        return "mod (every start timestep, one job per shard)"
    if parts[0] == "finetune":
        variant = parts[1].removeprefix(FINETUNED).removeprefix("-")
        kinds = {"": "f'", GENERATED_ONLY: "f_c', generated images only"}
        kind = kinds.get(variant) or ("set-size study" if variant.endswith("pc") else "f'_t, timestep study")
        return f"finetune ({kind})"
    if parts[0].startswith("mod-t"):
        return "mod (timestep study)"
    return parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--wall", type=float, default=None, help="wall-clock seconds of the whole run")
    parser.add_argument("--name", default="demo_stages", help="the CSV's name (scenes_stages for `make scenes`)")
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
    print(f"{'stage':42s}{'jobs':>6s}{'seconds':>9s}{'peak RSS (MB)':>15s}")
    for row in rows:
        print(f"{row['stage']:42s}{row['jobs']!s:>6s}{row['seconds']:>9}{row['peak_rss_mb']!s:>15s}")
    write_results(args.name, rows)


if __name__ == "__main__":
    main()
