# DDA / DiffPure / unguided adaptation of target data, and MoD of the generated set: one job, one shard.
from sda_core.jobs.adapt import adapt_shard
from sda_core.runtime import start_job

device = start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)
p = snakemake.params
adapt_shard(list(snakemake.input.images), snakemake.output[0], p.spec, snakemake.input.checkpoint,
            batch_size=p.batch_size, shard=int(snakemake.wildcards.shard), num_shards=p.num_shards,
            stream=p.stream, seed=p.seed, device=device, precision=p.precision, codec=p.codec,
            **p.settings)
