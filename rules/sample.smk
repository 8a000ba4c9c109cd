# Class-conditional generation of the synthetic source set (DiT), sharded over sample indices.


def generator_weights(wildcards):
    """The generator's weights (a file, or a diffusers DiT directory) and, for a latent-space one, its VAE."""
    weights = {"checkpoint": denoiser_checkpoint("generator")}
    if WORLD == "imagenet":  # the digits world trains a pixel-space generator
        from sda_core.sources import vae_directory

        vae = vae_directory(weights["checkpoint"], config["denoisers"]["generator"]["vae"])
        if vae is not None:
            weights["vae"] = vae
    return weights


rule sample_synthetic:
    input:
        unpack(generator_weights),
    output:
        directory(f"{R}/synthetic/generated/shard-{{shard}}.zarr"),
    params:
        spec=config["denoisers"]["generator"]["spec"],
        num_classes=NUM_CLASSES,
        images_per_class=config["sampling"]["images_per_class"],
        respacing=config["sampling"]["respacing"],
        batch_size=config["sampling"]["batch_size"],
        num_shards=config["sampling"]["shards"],
        seed=SEED,
        device=config["device"],
        precision=config["precision"],
        latent_scale=config["denoisers"]["generator"]["latent_scale"],
        codec=config["storage"]["codec"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    priority: 40
    log:
        log_path("sample_synthetic/{shard}"),
    benchmark:
        benchmark_path("sample_synthetic/{shard}")
    script:
        "../workflow_scripts/sample.py"
