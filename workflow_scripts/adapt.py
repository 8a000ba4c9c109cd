# DDA / DiffPure / unguided adaptation of target data, and MoD of the generated set: one job, one shard of
# its image sets (one, or all of the stage's with target_jobs: grouped).
from sda_core.jobs.adapt import AdaptedSet, adapt_sets_job
from sda_core.processes import ReverseProcess
from sda_core.runtime import start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
adapt_sets_job(
    [
        AdaptedSet(s["inputs"], output, ReverseProcess(**s["process"]), s["stream"])
        for s, output in zip(p.sets, snakemake.output, strict=True)
    ],
    spec=p.spec,
    checkpoint=snakemake.input.checkpoint,
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    seed=p.seed,
    device=device,
    precision=p.precision,
    compile_mode=p.compile_mode,
    codec=p.codec,
)
