# MEMO, a model-adaptation baseline: the source classifier adapted to each target image on its own
# (sda_core.memo), one job per architecture, target set and shard.


rule memo:
    input:
        images=lambda wc: [target_store(wc.corruption)],
        weights=lambda wc: source_weights(wc.arch),
    output:
        directory(memo_store("{arch}", "{corruption}", "{shard}")),
    log:
        log_path("memo/{arch}/{corruption}/{shard}"),
    benchmark:
        benchmark_path("memo/{arch}/{corruption}/{shard}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=lambda wc: classifier_model(wc.arch),
        num_classes=NUM_CLASSES,
        settings=lambda wc: memo_settings(wc.arch),
        preprocess=config["classifier_input"],
        images=config["memo"]["images"],
        batch_size=config["memo"]["batch_size"],
        num_shards=config["memo"]["shards"],
        stream=lambda wc: f"{image_sets.MEMO}/{wc.corruption}",
        seed=SEED,
        device=job_device(uses_gpu=True),
    script:
        "../workflow_scripts/memo.py"
