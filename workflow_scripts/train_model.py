# Source training (digits) and SDA fine-tuning: the same job, fine-tuning starts from `init`; one model,
# or every fine-tuned model of an architecture (target_jobs: grouped), params.trainings in output order.
# The job is the architecture's kind's (sda_core.models.kinds: a timm model's, a vlm's).
from sda_core.jobs.train_model import Training
from sda_core.models.kinds import kind_named
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
kind = kind_named(p.model.get("kind", "timm"))
kind.job("train_job")(
    [Training(output=output, **training) for output, training in zip(snakemake.output, p.trainings, strict=True)],
    init_weights=snakemake.input.get("init"),
    **kind.model_arguments(p.model),
    num_classes=p.num_classes,
    settings=p.settings,
    preprocess=p.preprocess,
    seed=p.seed,
    device=device,
    precision=p.precision,
    threads=snakemake.threads,
    task=run_task(snakemake),
)
