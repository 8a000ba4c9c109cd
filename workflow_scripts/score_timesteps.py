# The timestep study: accuracy of f, f' (and f'_t) on clean images re-noised from each t, the gains, the plot.
from sda_core.jobs.score_timesteps import score_timesteps_job
from sda_core.runtime import start_snakemake_job

start_snakemake_job(snakemake)
p = snakemake.params
score_timesteps_job(
    p.prediction_files,
    [tuple(level) for level in p.sets],
    matched=p.matched,
    table_output=snakemake.output.table,
    gain_output=snakemake.output.gain,
    plot_output=snakemake.output.plot,
    title=p.title,
)
