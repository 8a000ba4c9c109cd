# GDA's predictions of one architecture on one shard of a target set.
from sda_core.gda import GdaSettings
from sda_core.jobs.gda import gda_job
from sda_core.runtime import start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
gda_job(
    list(snakemake.input.images),
    snakemake.output[0],
    spec=p.spec,
    checkpoint=snakemake.input.checkpoint,
    timm_name=p.model["timm_name"],
    timm_kwargs=p.model["timm_kwargs"],
    num_classes=p.num_classes,
    weights=snakemake.input.classifier,
    settings=GdaSettings(**p.settings),
    preprocess=p.preprocess,
    images=p.images,
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    stream=p.stream,
    seed=p.seed,
    device=device,
    vgg_weights=snakemake.input.get("vgg"),
    clip_model=p.clip_model,
    clip_weights=snakemake.input.get("clip"),
    precision=p.precision,
    compile_mode=p.compile_mode,
)
