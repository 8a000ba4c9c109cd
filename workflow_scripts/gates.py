# The quality gates on the sanity figures: fail the run, naming the measured figure, or warn.
from sda_core.jobs.gates import gates_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
gates_job(snakemake.input.sanity, snakemake.output[0], gates=p.gates, metric=p.metric)
