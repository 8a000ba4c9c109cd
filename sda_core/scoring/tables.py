"""Per-corruption tables shared by the tasks: the row groups (each corruption, then the split's mean),
paired differences between methods, and the count of corruptions a method wins."""

from __future__ import annotations

import pandas as pd


def corruption_groups(test: list[str], validation: list[str]):
    """(split, corruption, members) for each row of a per-corruption table: every corruption of a split on
    its own, then the split's "mean" over all of them (no rows for an empty split)."""
    for split, corruptions in (("test", test), ("validation", validation)):
        if corruptions:
            yield from ((split, c, [c]) for c in corruptions)
            yield split, "mean", list(corruptions)


def paired_difference_table(
    by_arch: dict, comparisons, test: list[str], validation: list[str], difference
) -> pd.DataFrame:
    """The long-form table of paired differences, one row per (arch, comparison, split, corruption or
    "mean"). by_arch: arch -> (method, corruption) -> what `difference(first_sets, second_sets)` compares,
    which returns (difference, ci_low, ci_high) in points; a comparison of a method not run for an
    architecture is left out."""
    rows = []
    for arch, by_method in by_arch.items():
        for first, second in comparisons:
            for split, corruption, members in corruption_groups(test, validation):
                if not {(first, members[0]), (second, members[0])} <= by_method.keys():
                    continue  # not both run for this architecture (correctness' not_run)
                value, low, high = difference(
                    [by_method[first, c] for c in members], [by_method[second, c] for c in members]
                )
                rows.append(
                    {
                        "arch": arch,
                        "comparison": f"{first} - {second}",
                        "split": split,
                        "corruption": corruption,
                        "corruptions": len(members),
                        "difference": value,
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return pd.DataFrame(rows)


def corruption_wins(paired: pd.DataFrame, comparison: str = "SDA - DDA", split: str = "test") -> pd.DataFrame:
    """Per architecture: on how many single corruptions the first method is ahead with the paired
    interval above zero, behind with it below zero, or neither (the interval covers zero)."""
    rows = paired[(paired.comparison == comparison) & (paired.split == split) & (paired.corruption != "mean")]
    return pd.DataFrame(
        [
            {
                "arch": arch,
                "comparison": comparison,
                "ahead": int((part.ci_low > 0).sum()),
                "behind": int((part.ci_high < 0).sum()),
                "inconclusive": int(((part.ci_low <= 0) & (part.ci_high >= 0)).sum()),
                "corruptions": len(part),
                "behind_on": ", ".join(part.corruption[part.ci_high < 0]),
            }
            for arch, part in rows.groupby("arch", sort=False)
        ]
    )
