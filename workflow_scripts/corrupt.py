from sda_core.jobs.corrupt import corrupt_stores
from sda_core.runtime import start_job

start_job(snakemake.log[0])
p = snakemake.params
corrupt_stores(snakemake.input.clean, p.outputs, p.severity, p.seed, p.limits, codec=p.codec)
