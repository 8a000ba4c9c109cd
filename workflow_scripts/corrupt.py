# The clean test split with one corruption (digits world).
from sda_core.jobs.corrupt import corrupt_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
corrupt_job(
    snakemake.input.clean,
    snakemake.output[0],
    corruption=snakemake.wildcards.corruption,
    severity=p.severity,
    seed=p.seed,
    limit=p.limit,
    codec=p.codec,
)
