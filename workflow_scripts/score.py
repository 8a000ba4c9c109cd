# Ensembles, accuracy tables with intervals, sanity figures and the plot.
from pathlib import Path

from sda_core.jobs.score import score_job
from sda_core.provenance import write_provenance
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
score_job(
    p.prediction_files,
    test=p.test,
    validation=p.validation,
    severity=p.severity,
    has_clean=p.has_clean,
    table_output=snakemake.output.table,
    paired_output=snakemake.output.paired,
    sanity_output=snakemake.output.sanity,
    plot_output=snakemake.output.plot,
    title=p.title,
    variants=p.variants,
    fusions=p.fusions,
    memo=p.memo,
    gda_archs=p.gda_archs,
    fusion_output=snakemake.output.get("fusion"),
)
write_provenance(snakemake.output.provenance, p.config, Path(snakemake.scriptdir).parent)
