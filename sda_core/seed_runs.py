"""Several seeds of one experiment: where each seed's outputs lie, and the summary of the claims over
seeds (tools/seeds.py runs them). On the digits world every stage depends on the seed (the split,
the corruptions, every model, every noise draw), so the spread over seeds is the uncertainty of a
claim that one seed's paired interval (over images only) does not show.
"""

from __future__ import annotations

from pathlib import Path


def seed_folder(results: str, seed: int) -> str:
    """The folder of a seed's outputs: `results` itself for seed 0, else `results/seed-<seed>`."""
    return results if seed == 0 else f"{results}/seed-{seed}"


def table_path(results: str, seed: int, world: str, name: str) -> str:
    """A table of a seed's run (rules/common.smk: table_file)."""
    return f"{seed_folder(results, seed)}/tables/{world}_{name}.csv"


def seeds_summary(claims: dict[int, str | Path]):
    """seed -> its claims table (sda_core.jobs.claims) => per (claim, arch): the seeds, the mean, the
    standard deviation, the range of the measurement, how many seeds each verdict got, and every seed's
    figure with its interval."""
    import pandas as pd

    tables = pd.concat([pd.read_csv(path).assign(seed=seed) for seed, path in claims.items()], ignore_index=True)
    rows = []
    for (claim, arch), part in tables.groupby(["claim", "arch"], sort=False):
        values = part.measured
        rows.append(
            {
                "claim": claim,
                "arch": arch,
                "statement": part.statement.iloc[0],
                "paper": part.paper.iloc[0],
                "seeds": len(part),
                "mean": values.mean(),
                "sd": values.std(ddof=1) if len(part) > 1 else float("nan"),
                "min": values.min(),
                "max": values.max(),
                "holds": int((part.verdict == "holds").sum()),
                "does_not_hold": int((part.verdict == "does not hold").sum()),
                "inconclusive": int((part.verdict == "inconclusive").sum()),
                "per_seed": "; ".join(
                    f"seed {row.seed}: {row.measured:+.1f}"
                    + ("" if pd.isna(row.ci_low) else f" [{row.ci_low:+.1f}, {row.ci_high:+.1f}]")
                    for row in part.itertuples()
                ),
            }
        )
    return pd.DataFrame(rows)
