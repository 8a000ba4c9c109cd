# An ImageNet(-C) folder into the image store of one corruption (or the clean subset).
from sda_core.jobs.import_images import import_images_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
import_images_job(
    snakemake.output[0],
    snakemake.input.folder,
    num_classes=p.num_classes,
    size=p.size,
    images_per_class=p.images_per_class,
    from_imagenet_val=p.from_imagenet_val,
    corruption=p.corruption,
    severity=p.severity,
    skip_unreadable=p.skip_unreadable,
    allow_uneven_classes=p.allow_uneven_classes,
    subset_file=p.subset_file,
    adapted_directory=snakemake.input.get("adapted"),
    seed=p.seed,
    codec=p.codec,
    workers=snakemake.threads,
)
