from sda_core.jobs.prepare_digits import prepare_digits
from sda_core.runtime import start_job

start_job(snakemake.log[0])
prepare_digits(snakemake.output.train, snakemake.output.test, snakemake.params.resolution,
               snakemake.params.test_fraction, snakemake.params.seed)
