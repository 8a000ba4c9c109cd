# A source classifier's published weights into results/models/source/ (timm naming, safetensors).
from sda_core.jobs.import_classifier import import_classifier
from sda_core.runtime import start_job

start_job(snakemake.log[0], device="cpu")
p = snakemake.params
import_classifier(snakemake.input.weights, snakemake.output[0], p.arch["timm_name"], p.arch["timm_kwargs"],
                  p.num_classes)
