# The clean test split corrupted with every configured corruption (digits world).
from sda_core.jobs.corrupt import corrupt_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
corrupt_job(snakemake.input.clean, p.outputs, severity=p.severity, seed=p.seed, limits=p.limits, codec=p.codec)
