# GDA, a diffusion baseline guided by the source classifier (sda_core.gda): each target image adapted
# by the unconditional ADM under GDA's guidance and classified, one job per architecture, target set
# and shard (the guidance uses the architecture's classifier, so every architecture has its own images).


rule gda:
    input:
        unpack(gda_weights),
        images=lambda wc: [target_store(wc.corruption)],
    output:
        directory(gda_store("{arch}", "{corruption}", "{shard}")),
    log:
        log_path("gda/{arch}/{corruption}/{shard}"),
    benchmark:
        benchmark_path("gda/{arch}/{corruption}/{shard}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        spec=DENOISER_SPECS["unconditional"],
        model=lambda wc: classifier_model(wc.arch),
        num_classes=NUM_CLASSES,
        settings=gda_settings(),
        clip_model=config["gda"]["clip"]["model"],
        preprocess=config["classifier_input"],
        images=config["gda"]["images"],
        batch_size=config["gda"]["batch_size"],
        num_shards=config["gda"]["shards"],
        stream=lambda wc: f"{image_sets.GDA}/{wc.corruption}",
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
        compile_mode=config["compile"],
    script:
        "../workflow_scripts/gda.py"
