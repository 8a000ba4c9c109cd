# The per-image methods (sda_core.methods.PER_IMAGE_STAGES: MEMO adapts the source classifier to each
# target image on its own, GDA adapts each image under its guidance): one rule for all of them, one job
# per method, architecture, target set and shard (sda_core/jobs/per_image.py).


rule per_image:
    input:
        unpack(per_image_inputs),
    output:
        directory(per_image_store("{method}", "{arch}", "{corruption}", "{shard}")),
    log:
        log_path("{method}/{arch}/{corruption}/{shard}"),
    benchmark:
        benchmark_path("{method}/{arch}/{corruption}/{shard}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=lambda wc: classifier_model(wc.arch),
        num_classes=NUM_CLASSES,
        settings=lambda wc: PER_IMAGE_STAGES[wc.method].settings(config, ARCHS[wc.arch]),
        preprocess=config["classifier_input"],
        images=lambda wc: config[wc.method]["images"],
        batch_size=lambda wc: config[wc.method]["batch_size"],
        num_shards=lambda wc: config[wc.method]["shards"],
        stream=lambda wc: f"{wc.method}/{wc.corruption}",
        seed=SEED,
        device=job_device(uses_gpu=True),
    script:
        "../workflow_scripts/per_image.py"
