# A classifier's published weights (a source model, or a released f') into the workflow's (timm naming, safetensors).
from sda_core.jobs.import_classifier import import_classifier_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
import_classifier_job(
    snakemake.input.weights,
    snakemake.output[0],
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    weights_format=p.weights_format,
)
