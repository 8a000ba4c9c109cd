from sda_core.jobs.predict import predict_job
from sda_core.runtime import start_job

device = start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)
p = snakemake.params
predict_job(p.image_sets, snakemake.output[0], p.arch["timm_name"], p.arch["timm_kwargs"], p.num_classes,
            {"source": snakemake.input.source, "finetuned": snakemake.input.finetuned}, p.preprocess, device)
