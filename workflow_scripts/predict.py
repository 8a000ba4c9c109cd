# Softmax outputs of the source, fine-tuned and study classifiers on one group of image sets.
from sda_core.jobs.predict import predict_job
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
predict_job(
    p.image_sets,
    snakemake.output[0],
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    weights=p.weights,
    models=p.models,
    preprocess=p.preprocess,
    device=device,
    precision=p.precision,
    threads=snakemake.threads,
    segmenter=p.model.get("segmenter"),
    task=run_task(snakemake),
)
