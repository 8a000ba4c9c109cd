# MEMO's predictions of one architecture on one shard of a target set.
from sda_core.jobs.memo import memo_job
from sda_core.memo import MemoSettings
from sda_core.runtime import start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
memo_job(
    list(snakemake.input.images),
    snakemake.output[0],
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    weights=snakemake.input.weights,
    settings=MemoSettings(**p.settings),
    preprocess=p.preprocess,
    images=p.images,
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    stream=p.stream,
    seed=p.seed,
    device=device,
)
