# The digit-scenes world's source and target scenes, with their label maps.
from sda_core.jobs.prepare_digit_scenes import prepare_digit_scenes_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
prepare_digit_scenes_job(
    snakemake.output.train,
    snakemake.output.test,
    resolution=p.resolution,
    test_fraction=p.test_fraction,
    train_scenes=p.train_scenes,
    test_scenes=p.test_scenes,
    seed=p.seed,
)
