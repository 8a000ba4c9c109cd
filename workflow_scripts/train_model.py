# Source training (digits) and SDA fine-tuning: the same job, fine-tuning starts from `init`; one model,
# or every fine-tuned model of an architecture (target_jobs: grouped), params.trainings in output order.
from sda_core.jobs.train_model import Training, train_models_job
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
train_models_job(
    [Training(output=output, **training) for output, training in zip(snakemake.output, p.trainings, strict=True)],
    init_weights=snakemake.input.get("init"),
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    settings=p.settings,
    preprocess=p.preprocess,
    seed=p.seed,
    device=device,
    precision=p.precision,
    threads=snakemake.threads,
    segmenter=p.model.get("segmenter"),
    task=run_task(snakemake),
)
