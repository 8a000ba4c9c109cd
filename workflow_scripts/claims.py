# The paper's claims measured on this run, with paired intervals and verdicts.
from sda_core.jobs.claims import claims_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
claims_job(
    snakemake.input.paired,
    snakemake.input.gains[0] if snakemake.input.gains else None,
    configured_t=p.configured_t,
    matched=p.matched,
    generated_only=p.generated_only,
    smallest_subset=p.smallest_subset,
    output=snakemake.output[0],
)
