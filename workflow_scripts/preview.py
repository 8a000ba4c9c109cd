# The preview grid: the same images through every stage.
from sda_core.jobs.preview import preview_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
preview_job(snakemake.params.image_sets, snakemake.output[0])
