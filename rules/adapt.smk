# Diffusion-driven adaptation of the target data: DDA (guided), DiffPure and unguided diffusion
# (the misalignment check on clean images), one job per process, corruption and shard.


rule adapt:
    input:
        images=lambda wc: [target_store(wc.corruption)],
        checkpoint=denoiser_weights("unconditional"),
    output:
        directory(adapted_store("{process}", "{corruption}", "{shard}")),
    log:
        log_path("adapt/{process}/{corruption}/{shard}"),
    benchmark:
        benchmark_path("adapt/{process}/{corruption}/{shard}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        spec=DENOISER_SPECS["unconditional"],
        process=lambda wc: process_settings(wc.process),
        batch_size=config["adaptation"]["batch_size"],
        num_shards=config["adaptation"]["shards"],
        stream=lambda wc: image_sets.adapted(wc.process, wc.corruption),
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
        compile_mode=config["compile"],
        codec=config["storage"]["codec"],
    script:
        "../workflow_scripts/adapt.py"
