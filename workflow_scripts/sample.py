# Conditional generation of one shard of the synthetic source set (for classes, or for label maps).
from sda_core.data.digit_scenes import GeneratedMaps
from sda_core.jobs.sample import sample_job
from sda_core.runtime import run_task, start_snakemake_job

device = start_snakemake_job(snakemake)
p = snakemake.params
sample_job(
    snakemake.output[0],
    spec=p.spec,
    checkpoint=snakemake.input.checkpoint,
    num_classes=p.num_classes,
    images_per_class=p.images_per_class,
    respacing=p.respacing,
    batch_size=p.batch_size,
    shard=int(snakemake.wildcards.shard),
    num_shards=p.num_shards,
    seed=p.seed,
    device=device,
    precision=p.precision,
    compile_mode=p.compile_mode,
    vae=snakemake.input.get("vae"),
    latent_scale=p.latent_scale,
    codec=p.codec,
    task=run_task(snakemake),
    label_maps=GeneratedMaps(**p.label_maps) if p.get("label_maps") else None,
)
