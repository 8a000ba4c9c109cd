# Task segmentation: mIoU tables with intervals, sanity figures and the plot.
from pathlib import Path

from sda_core.jobs.score_segmentation import score_segmentation_job
from sda_core.provenance import write_provenance
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
score_segmentation_job(
    p.prediction_files,
    test=p.test,
    validation=p.validation,
    severity=p.severity,
    num_classes=p.num_classes,
    seed=p.seed,
    table_output=snakemake.output.table,
    paired_output=snakemake.output.paired,
    sanity_output=snakemake.output.sanity,
    plot_output=snakemake.output.plot,
    title=p.title,
)
write_provenance(snakemake.output.provenance, p.config, Path(snakemake.scriptdir).parent)
