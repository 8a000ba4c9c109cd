"""Stage: the timestep study (docs/method.md#studies): the top-1 of f, f' and f'_t on clean images
re-noised from each t, the alignment gains, and their plot (sda_core.scoring.timesteps)."""

from __future__ import annotations

import logging

from sda_core.scoring.predictions import PredictionFiles
from sda_core.scoring.timesteps import Level, gain_table, plot_timesteps, timestep_correctness, timestep_table

log = logging.getLogger(__name__)


def score_timesteps_job(
    prediction_files: PredictionFiles,
    levels: list[Level],
    matched: bool,
    table_output: str,
    gain_output: str,
    plot_output: str,
    title: str,
) -> None:
    correct = timestep_correctness(prediction_files, levels, matched)
    table = timestep_table(correct)
    table.to_csv(table_output, index=False, float_format="%.2f")
    gains = gain_table(correct)
    gains.to_csv(gain_output, index=False, float_format="%.2f")
    plot_timesteps(table, plot_output, title)
    log.info(
        "top-1 by t:\n%s", table.pivot_table(index="t", columns=["arch", "process", "model"], values="top1").round(1)
    )
    log.info("gains:\n%s", gains.round(2).to_string(index=False))
