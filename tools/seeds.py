"""Run one experiment with several seeds and summarise its claims over them.

Each seed is an ordinary run (`snakemake --config seed=S`, its outputs in results/ for seed 0 and
results/seed-S/ otherwise; a finished seed costs nothing to run again), then the claims tables of all
seeds are summarised in results/tables/<world>_seeds.csv: per claim and architecture the mean over
seeds, the standard deviation and range, and how many seeds each verdict got.

    python tools/seeds.py --configfile presets/digits.yaml --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sda_core.seed_runs import seeds_summary, table_path  # noqa: E402

RESULTS = "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="presets/digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", default="all")
    parser.add_argument("snakemake_args", nargs="*", help="passed on to every snakemake run (after --)")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("a summary over seeds needs at least two")
    world = yaml.safe_load(Path(args.configfile).read_text())["world"]
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    for seed in args.seeds:
        command = [snakemake, "--cores", args.cores, "--configfile", args.configfile, "--config", f"seed={seed}"]
        print(f"seed {seed}: {' '.join(command + args.snakemake_args)}", flush=True)
        start = time.monotonic()
        subprocess.run(command + args.snakemake_args, check=True)
        print(f"seed {seed}: {time.monotonic() - start:.0f} s", flush=True)
    summary = seeds_summary({seed: table_path(RESULTS, seed, world, "claims") for seed in args.seeds})
    output = Path(table_path(RESULTS, 0, world, "seeds"))
    summary.to_csv(output, index=False, float_format="%.2f")
    print(f"{output}:")
    print(
        summary[["claim", "arch", "seeds", "mean", "sd", "min", "max", "holds", "inconclusive", "does_not_hold"]]
        .round(2)
        .to_string(index=False)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
