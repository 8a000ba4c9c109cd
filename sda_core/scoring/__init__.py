"""Scoring: reading the predict stage's outputs and turning them into tables, intervals and plots.

A library the scoring jobs (sda_core.jobs: score, score_timesteps, claims, gates, preview) call; no job
imports another job. The task-independent parts are here (predictions, sanity checks, per-corruption
groups and paired tables, plots); each task's own aggregate lives beside them (accuracy: top-1 with
Wilson intervals; miou: mIoU with a bootstrap over scenes), chosen by the task (sda_core.tasks).
"""
