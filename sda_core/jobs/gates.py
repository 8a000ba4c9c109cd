"""Stage: the quality gates, checked on the sanity table: a run whose models are not good enough for
its figures to mean anything fails, naming the measured figure (or warns, if the config says so).

The sanity table's figures are the task's metric (sda_core.tasks: top-1, or mIoU for segmentation).
- source_clean_accuracy: each source classifier's top-1 on the clean target images (%); a broken
  checkpoint, wrong preprocessing or an undertrained model falls below it; a vlm's accuracy on each of
  its questions (its table question's, and each other's row);
- generator_label_agreement: how often each source classifier agrees with the label the generator
  was conditioned on (%); below it the synthetic set's labels are noise and fine-tuning on it is not SDA.
"""

from __future__ import annotations

import logging

import pandas as pd

from sda_core.scoring.sanity import GENERATOR_AGREEMENT, QUESTION_MARK, SOURCE_CLEAN

log = logging.getLogger(__name__)

GATES = {"source_clean_accuracy": SOURCE_CLEAN, "generator_label_agreement": GENERATOR_AGREEMENT}


class GateError(RuntimeError):
    pass


def gates_job(sanity_table: str, output: str, gates: dict, metric: str = "top1") -> None:
    """Compare each configured gate with the sanity table's `metric` column (the task's); write every
    comparison; fail (or warn)."""
    sanity = pd.read_csv(sanity_table)
    rows = []
    for gate, check in GATES.items():
        threshold = gates[gate]
        if threshold is None:
            continue
        # a vlm's other questions have rows of their own (sda_core.scoring.sanity.question_check)
        measured = sanity[(sanity.check == check) | sanity.check.str.startswith(check + QUESTION_MARK)]
        if measured.empty:
            raise GateError(f"gate {gate}: the sanity table {sanity_table} has no row {check!r}")
        for row in measured.itertuples():
            value = getattr(row, metric)
            passed = value >= threshold
            rows.append(
                {
                    "gate": gate,
                    "check": row.check,
                    "arch": row.arch,
                    "measured": value,
                    "threshold": threshold,
                    "n": row.n,
                    "result": "pass" if passed else gates["action"],
                }
            )
    table = pd.DataFrame(rows, columns=["gate", "check", "arch", "measured", "threshold", "n", "result"])
    failed = table[table.result != "pass"]
    lines = [
        f"{r.gate}: {r.arch} measured {r.measured:.2f}% < {r.threshold}% ({r.n} images; {r.check})"
        for r in failed.itertuples()
    ]
    if not failed.empty and gates["action"] == "fail":
        raise GateError("quality gate(s) failed (set gates.action: warn to continue anyway):\n  " + "\n  ".join(lines))
    for line in lines:
        log.warning("gate not met (gates.action: warn): %s", line)
    table.to_csv(output, index=False, float_format="%.2f")
    log.info("gates:\n%s", table.to_string(index=False) if len(table) else "none configured")
