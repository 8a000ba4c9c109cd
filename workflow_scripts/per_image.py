# A per-image method's predictions (MEMO, GDA: sda_core.methods.PER_IMAGE_STAGES) of one architecture on
# one shard of its target sets (one, or all with target_jobs: grouped).
from sda_core.jobs.per_image import TargetSet, per_image_sets_job
from sda_core.runtime import start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
per_image_sets_job(
    p.stage,  # its registry entry (rules/per_image.smk)
    [
        TargetSet(t["inputs"], output, t["stream"], images_output)
        for t, output, images_output in zip(
            p.targets,
            snakemake.output.predictions,
            snakemake.output.get("images", [None] * len(p.targets)),
            strict=True,
        )
    ],
    weights={name: path for name, path in snakemake.input.items() if name != "images"},
    model=p.model,
    num_classes=p.num_classes,
    settings=p.settings,
    preprocess=p.preprocess,
    images=p.images,
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    seed=p.seed,
    device=device,
)
