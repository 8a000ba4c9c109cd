# The held-out split under a named shift (a digits target set).
from sda_core.jobs.shift import shift_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
shift_job(snakemake.input.clean, snakemake.output[0], shift=p.shift, seed=p.seed, codec=p.codec)
