# The tables of one named target set (e.g. ImageNet-W): every method's accuracy and the paired differences.
from sda_core.jobs.score_target import score_target_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
score_target_job(
    p.prediction_files,
    snakemake.wildcards.target,
    table_output=snakemake.output.table,
    paired_output=snakemake.output.paired,
    variants=p.variants,
    per_image=p.per_image,
    processes=p.processes,
    studies=p.studies,
    models=p.models,
)
