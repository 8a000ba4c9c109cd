# Class-conditional generation of the synthetic source set (DiT), sharded over sample indices.


rule sample_synthetic:
    input:
        checkpoint=denoiser_checkpoint("generator"),
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
