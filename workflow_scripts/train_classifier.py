# Source training (digits) and SDA fine-tuning: the same job, fine-tuning starts from `init`.
from sda_core.jobs.train_classifier import train_classifier_job
from sda_core.runtime import start_job

device = start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)
arch = snakemake.params.arch
train_classifier_job(list(snakemake.input.train), snakemake.output[0], arch["timm_name"], arch["timm_kwargs"],
                     snakemake.params.num_classes, snakemake.params.settings, snakemake.params.preprocess,
                     snakemake.params.seed, device, init_weights=snakemake.input.get("init"))
