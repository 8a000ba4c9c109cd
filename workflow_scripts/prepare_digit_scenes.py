# One split of the digit-scenes world: its scenes, with their label maps.
from sda_core.jobs.prepare_digit_scenes import prepare_digit_scenes_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
prepare_digit_scenes_job(
    snakemake.output[0],
    snakemake.wildcards.split,
    resolution=p.resolution,
    test_fraction=p.test_fraction,
    count=p.scenes,
    seed=p.seed,
)
