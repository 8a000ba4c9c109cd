from sda_core.jobs.corrupt import corrupt_store
from sda_core.runtime import start_job

start_job(snakemake.log[0])
corrupt_store(snakemake.input.clean, snakemake.output[0], snakemake.wildcards.corruption,
              snakemake.params.severity, snakemake.params.seed, limit=snakemake.params.limit)
