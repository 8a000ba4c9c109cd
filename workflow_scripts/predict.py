# Softmax outputs of the source, fine-tuned and study models on one group of image sets, by the
# architecture's kind's job (sda_core.models.kinds).
from sda_core.models.kinds import kind_named
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
kind = kind_named(p.model.get("kind", "timm"))
kind.job("predict_job")(
    p.image_sets,
    snakemake.output[0],
    **kind.model_arguments(p.model),
    num_classes=p.num_classes,
    weights=p.weights,
    models=p.models,
    preprocess=p.preprocess,
    device=device,
    precision=p.precision,
    threads=snakemake.threads,
    task=run_task(snakemake),
    **p.settings,
)
