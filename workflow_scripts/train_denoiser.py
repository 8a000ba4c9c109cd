from sda_core.jobs.train_denoiser import train_denoiser_job
from sda_core.runtime import start_job

device = start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)
train_denoiser_job(snakemake.input.train, snakemake.output[0], snakemake.params.spec, snakemake.params.settings,
                   snakemake.params.class_conditional, snakemake.params.seed, device)
