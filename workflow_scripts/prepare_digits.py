# The embedded digits world's train and test splits.
from sda_core.jobs.prepare_digits import prepare_digits_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
prepare_digits_job(
    snakemake.output.train,
    snakemake.output.test,
    resolution=p.resolution,
    test_fraction=p.test_fraction,
    seed=p.seed,
)
