# Task segmentation: the preview grid of scenes, their adaptations and the predicted label maps.
from sda_core.jobs.preview import segmentation_preview_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
segmentation_preview_job(p.rows, p.prediction_files, snakemake.output[0], num_classes=p.num_classes)
