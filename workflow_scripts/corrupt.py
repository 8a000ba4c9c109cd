# The clean test split with one corruption, or each of them (target_jobs: grouped) (embedded worlds).
from sda_core.jobs.corrupt import corrupt_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
corrupt_job(
    snakemake.input.clean,
    list(snakemake.output),
    corruptions=p.corruptions,
    severity=p.severity,
    seed=p.seed,
    limits=p.limits,
    codec=p.codec,
)
