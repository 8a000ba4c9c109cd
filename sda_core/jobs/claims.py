"""Stage: the paper's claims, each measured on this run with a paired interval and a verdict
(docs/method.md#studies). Read from the paired table of the score stage and the gain table of the
timestep study; a claim whose study is switched off is left out.

Verdicts: "holds" when the 95% interval lies on the claimed side of zero, "does not hold" when it
lies on the other side, "inconclusive" when it covers zero. The paper's figures are ImageNet's, quoted
beside the measurement; the digits world tests the mechanism, not the numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sda_core.image_sets import SOURCE
from sda_core.scoring.tables import corruption_wins
from sda_core.scoring.timesteps import MATCHED, MISALIGNMENT

log = logging.getLogger(__name__)

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# The alignment claims are read on plain diffusion of clean images, the paper's synthetic data; DDA's
# guidance pulls the images back to the clean ones, which leaves little to align (both are in the table).
ALIGNMENT_PROCESS = "unguided"


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    paper: str


CLAIMS = {
    claim.name: claim
    for claim in [
        Claim(
            "sda_beats_dda", "SDA - DDA > 0, mean over the test corruptions", "+2.5 to +2.9 points (5 architectures)"
        ),
        Claim("dda_beats_source", "DDA - Source > 0, mean over the test corruptions", "+3.8 to +11.0 points"),
        Claim(
            "sda_beats_dda_per_corruption",
            "SDA - DDA > 0 on all test corruptions but one (count with the interval above zero)",
            "14 of 15 (all but contrast)",
        ),
        Claim(
            "misalignment",
            "f loses accuracy on clean images diffused from t near 500 (unguided), points lost",
            "ConvNeXt-B 83.4% -> 41.5-65.1% for t >= 500",
        ),
        Claim(
            "dda_costs_clean",
            "DDA's diffusion (configured start) costs f accuracy on clean images, points lost",
            "Swin-B > 21.8, ConvNeXt-B > 18.8 points",
        ),
        Claim(
            "alignment_gain_t500",
            "the aligned model beats f on clean images diffused from t near 500 (unguided), points",
            "+6.0 at t = 500",
        ),
        Claim(
            "alignment_gain_t700",
            "the aligned model beats f on clean images diffused from t near 700 (unguided), points",
            "Swin-B +9.3 (55.7 -> 65.0), ConvNeXt-B +7.1 (60.3 -> 67.4)",
        ),
        Claim(
            "gain_grows_with_t",
            "the alignment gain near t = 999 exceeds the gain near t = 500 (unguided), points",
            "+9.9 at t = 1000 vs +6.0 at t = 500",
        ),
        Claim("mod_beats_generated_only", "SDA - SDA (f_c') > 0, mean over the test corruptions", "f_c' below f_u'"),
        Claim(
            "few_images_suffice",
            "SDA with the smallest subset of the MoD set - DDA > 0, mean over the test corruptions",
            "1 image per class already beats DDA",
        ),
        Claim(
            "sda_beats_tent",
            "SDA - TENT > 0, mean over the test corruptions",
            "not in the paper (TENT: the first baseline of most test-time-adaptation papers)",
        ),
        Claim(
            "sda_on_gda_beats_gda",
            "SDA on GDA - GDA > 0, mean over the test corruptions (f' on GDA's images beside f on the raw ones)",
            "not measured (the paper calls the two complementary)",
        ),
        Claim(
            "gda_alignment_helps",
            "SDA on GDA (f'_GDA) - SDA on GDA > 0, mean over the test corruptions (f' aligned to GDA's own domain)",
            "not measured",
        ),
        Claim(
            "tuned_fusion",
            "SDA (tuned weight) - SDA > 0, mean over the test corruptions (this project's fusion)",
            "not in the paper (adaptive fusion left as future work)",
        ),
        Claim(
            "sda_beats_lora_on_source",
            "SDA - LoRA on source > 0, mean over the test corruptions (a vlm: f' by the same LoRA recipe on "
            "source images instead of the MoD set)",
            "about +2.4 points (LLaVA-1.5-7B, over fine-tuning on source data)",
        ),
    ]
}


def verdict(low: float, high: float) -> str:
    if low > 0:
        return HOLDS
    if high < 0:
        return FAILS
    return INCONCLUSIVE


def _row(claim: str, arch: str, value: float, low: float, high: float, detail: str, decided: str | None = None):
    return {
        "claim": claim,
        "arch": arch,
        "statement": CLAIMS[claim].statement,
        "paper": CLAIMS[claim].paper,
        "measured": value,
        "ci_low": low,
        "ci_high": high,
        "verdict": decided or verdict(low, high),
        "detail": detail,
    }


def _nearest(gains: pd.DataFrame, t: int) -> int:
    levels = sorted(set(gains.t))
    return min(levels, key=lambda level: (abs(level - t), level))


def claims_table(
    paired: pd.DataFrame,
    gains: pd.DataFrame | None,
    configured_t: int | None,
    matched: bool,
    generated_only: str | None = None,
    smallest_subset: str | None = None,
) -> pd.DataFrame:
    """Every claim the run's studies measure, per architecture (columns: claim, arch, statement, paper,
    measured, ci_low, ci_high, verdict, detail). generated_only, smallest_subset: the method labels of
    f_c' and of the smallest set-size variant (sda_core.studies), where the run has them."""
    rows = []
    means = paired[(paired.split == "test") & (paired.corruption == "mean")].set_index(["arch", "comparison"])
    archs = list(dict.fromkeys(paired.arch))
    comparisons = {"sda_beats_dda": "SDA - DDA", "dda_beats_source": "DDA - Source"}
    if generated_only:
        comparisons["mod_beats_generated_only"] = f"SDA - {generated_only}"
    if smallest_subset:
        comparisons["few_images_suffice"] = f"{smallest_subset} - DDA"
    # the claims of the runs that have their rows (TENT, GDA, its alignment study, the fusion study)
    for claim, comparison in (
        ("sda_beats_tent", "SDA - TENT"),
        ("sda_on_gda_beats_gda", "SDA on GDA - GDA"),
        ("gda_alignment_helps", "SDA on GDA (f'_GDA) - SDA on GDA"),
        ("tuned_fusion", "SDA (tuned weight) - SDA"),
        ("sda_beats_lora_on_source", "SDA - LoRA on source"),
    ):
        if comparison in set(paired.comparison):
            comparisons[claim] = comparison
    for arch in archs:
        for claim, comparison in comparisons.items():
            if (arch, comparison) not in means.index:
                continue  # not made for this architecture (its kind: a vlm has no f_c', a classifier no LoRA on source)
            row = means.loc[(arch, comparison)]
            rows.append(_row(claim, arch, row.difference, row.ci_low, row.ci_high, comparison))
    for win in corruption_wins(paired).itertuples():
        needed = win.corruptions - 1
        decided = HOLDS if win.ahead >= needed else FAILS if win.ahead + win.inconclusive < needed else INCONCLUSIVE
        behind = f"behind on {win.behind} ({win.behind_on or 'none'})"
        detail = f"ahead on {win.ahead}, {behind}, inconclusive on {win.inconclusive}"
        rows.append(_row("sda_beats_dda_per_corruption", win.arch, win.ahead, np.nan, np.nan, detail, decided))
    if gains is not None and len(gains):
        studied = list(dict.fromkeys(gains.arch))  # the classifiers (a vlm is not in the timestep study)
        gains = gains.set_index(["arch", "process", "comparison", "t"])
        aligned = f"{MATCHED if matched else 'finetuned'} - {SOURCE}"
        t500, t700, t999 = (_nearest(gains.reset_index(), t) for t in (500, 700, 999))
        for arch in [arch for arch in archs if arch in studied]:
            drop = gains.loc[(arch, "unguided", MISALIGNMENT, t500)]
            rows.append(_row("misalignment", arch, -drop.difference, -drop.ci_high, -drop.ci_low, f"t = {t500}"))
            if configured_t is not None:
                cost = gains.loc[(arch, "dda", MISALIGNMENT, configured_t)]
                rows.append(
                    _row("dda_costs_clean", arch, -cost.difference, -cost.ci_high, -cost.ci_low, f"t = {configured_t}")
                )
            for claim, t in (("alignment_gain_t500", t500), ("alignment_gain_t700", t700)):
                gain = gains.loc[(arch, ALIGNMENT_PROCESS, aligned, t)]
                rows.append(_row(claim, arch, gain.difference, gain.ci_low, gain.ci_high, f"{aligned}, t = {t}"))
            low = gains.loc[(arch, ALIGNMENT_PROCESS, aligned, t500)]
            high = gains.loc[(arch, ALIGNMENT_PROCESS, aligned, t999)]
            # the two gains' intervals: apart, or overlapping (no per-image interval of their difference here)
            decided = HOLDS if high.ci_low > low.ci_high else FAILS if high.ci_high < low.ci_low else INCONCLUSIVE
            detail = f"{aligned}: {low.difference:+.1f} at t = {t500}, {high.difference:+.1f} at t = {t999}"
            rows.append(
                _row("gain_grows_with_t", arch, high.difference - low.difference, np.nan, np.nan, detail, decided)
            )
    order = {name: k for k, name in enumerate(CLAIMS)}
    table = pd.DataFrame(rows)
    return table.sort_values(["claim", "arch"], key=lambda c: c.map(order) if c.name == "claim" else c.map(archs.index))


def claims_job(
    paired_table: str,
    gain_table: str | None,
    configured_t: int | None,
    matched: bool,
    generated_only: str | None,
    smallest_subset: str | None,
    output: str,
) -> None:
    paired = pd.read_csv(paired_table)
    gains = pd.read_csv(gain_table) if gain_table else None
    table = claims_table(paired, gains, configured_t, matched, generated_only, smallest_subset)
    table.to_csv(output, index=False, float_format="%.2f")
    log.info("claims:\n%s", table[["claim", "arch", "measured", "ci_low", "ci_high", "verdict"]].to_string(index=False))
