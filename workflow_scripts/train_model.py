# Source training (digits) and SDA fine-tuning: the same job, fine-tuning starts from `init`.
from sda_core.jobs.train_model import train_model_job
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
train_model_job(
    list(snakemake.input.train),
    snakemake.output[0],
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    settings=p.settings,
    preprocess=p.preprocess,
    seed=p.seed,
    device=device,
    precision=p.precision,
    threads=snakemake.threads,
    init_weights=snakemake.input.get("init"),
    images_per_class=p.images_per_class,
    segmenter=p.model.get("segmenter"),
    task=run_task(snakemake),
)
