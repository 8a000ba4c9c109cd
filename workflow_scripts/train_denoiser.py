# The digits world's unconditional denoiser or class-conditional generator.
from sda_core.jobs.train_denoiser import train_denoiser_job
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
train_denoiser_job(
    snakemake.input.train,
    snakemake.output[0],
    spec=p.spec,
    settings=p.settings,
    conditional=p.conditional,
    seed=p.seed,
    device=device,
    task=run_task(snakemake),
)
