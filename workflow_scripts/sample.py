from sda_core.jobs.sample import sample_shard
from sda_core.runtime import start_job

device = start_job(snakemake.log[0], snakemake.threads, snakemake.params.device)
p = snakemake.params
sample_shard(snakemake.output[0], p.spec, snakemake.input.checkpoint, p.num_classes, p.images_per_class,
             p.respacing, p.batch_size, int(snakemake.wildcards.shard), p.num_shards, p.seed, device, p.precision,
             vae=snakemake.input.get("vae"), latent_scale=p.latent_scale, codec=p.codec)
