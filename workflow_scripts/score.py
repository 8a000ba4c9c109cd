from sda_core.jobs.score import score_job
from sda_core.runtime import start_job

start_job(snakemake.log[0])
p = snakemake.params
score_job(p.prediction_files, p.test, p.validation, p.severity, snakemake.output.table,
          snakemake.output.paired, snakemake.output.sanity, snakemake.output.plot, p.title)
