# DDA / DiffPure / unguided adaptation of target data, and MoD of the generated set: one job, one shard.
from sda_core.jobs.adapt import adapt_job
from sda_core.processes import ReverseProcess
from sda_core.runtime import start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
adapt_job(
    list(snakemake.input.images),
    snakemake.output[0],
    spec=p.spec,
    checkpoint=snakemake.input.checkpoint,
    process=ReverseProcess(**p.process),
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    stream=p.stream,
    seed=p.seed,
    device=device,
    precision=p.precision,
    compile_mode=p.compile_mode,
    codec=p.codec,
)
