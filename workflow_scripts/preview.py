# The preview grid: the same samples through every stage (as the run's task shows them).
from sda_core.jobs.preview import preview_job
from sda_core.runtime import run_task, start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
preview_job(run_task(snakemake), p.rows, p.prediction_files, snakemake.output[0], num_classes=p.num_classes)
