# An ImageNet(-C) folder into the image store of one corruption (or the clean subset).
from sda_core.jobs.import_images import import_images
from sda_core.runtime import start_job

start_job(snakemake.log[0], snakemake.threads, "cpu")
p = snakemake.params
import_images(snakemake.output[0], snakemake.input.folder, p.num_classes, p.size, p.images_per_class,
              from_imagenet_val=p.from_imagenet_val, corruption=p.corruption, severity=p.severity,
              skip_unreadable=p.skip_unreadable, seed=p.seed, codec=p.codec,
              workers=snakemake.threads)
