# Conditional generation of the synthetic source set, sharded over sample indices: images for classes,
# or (task segmentation) for label maps composed for it.


rule sample_synthetic:
    input:
        unpack(generator_weights),
    output:
        directory(generated_store("{shard}")),
    log:
        log_path("sample_synthetic/{shard}"),
    benchmark:
        benchmark_path("sample_synthetic/{shard}")
    priority: 40
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        **generated_label_maps(),
        spec=DENOISER_SPECS["generator"],
        num_classes=NUM_CLASSES,
        images_per_class=config["sampling"]["images_per_class"],
        respacing=config["sampling"]["respacing"],
        batch_size=config["sampling"]["batch_size"],
        num_shards=config["sampling"]["shards"],
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
        compile_mode=config["compile"],
        latent_scale=config["denoisers"]["generator"]["latent_scale"],
        codec=config["storage"]["codec"],
    script:
        "../workflow_scripts/sample.py"
