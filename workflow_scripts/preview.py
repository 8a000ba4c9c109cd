from sda_core.jobs.preview import preview_job
from sda_core.runtime import start_job

start_job(snakemake.log[0])
preview_job(snakemake.params.image_sets, snakemake.output[0])
