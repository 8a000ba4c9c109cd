# The run's tables with intervals, the paired differences, sanity figures and the plot (as its task scores).
from pathlib import Path

from sda_core.jobs.score import score_job
from sda_core.provenance import write_provenance
from sda_core.runtime import run_task, start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
score_job(
    run_task(snakemake),
    prediction_files=p.prediction_files,
    table_output=snakemake.output.table,
    paired_output=snakemake.output.paired,
    sanity_output=snakemake.output.sanity,
    plot_output=snakemake.output.plot,
    fusion_output=snakemake.output.get("fusion"),
    **p.settings,
)
write_provenance(snakemake.output.provenance, p.config, Path(snakemake.scriptdir).parent)
