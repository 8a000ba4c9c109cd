# Diffusion-driven adaptation of the target data: DDA (guided), DiffPure and unguided diffusion
# (the misalignment check on clean images), one job per method, corruption and shard.


rule adapt:
    input:
        images=lambda wc: [target_store(wc.corruption)],
        checkpoint=denoiser_checkpoint("unconditional"),
    output:
        directory(f"{R}/adapted/{{method}}/{{corruption}}/shard-{{shard}}.zarr"),
    params:
        spec=config["denoisers"]["unconditional"]["spec"],
        settings=lambda wc: adaptation_settings(wc.method),
        batch_size=config["adaptation"]["batch_size"],
        num_shards=config["adaptation"]["shards"],
        stream=lambda wc: f"{wc.method}/{wc.corruption}",
        seed=SEED,
        device=config["device"],
        precision=config["precision"],
        codec=config["storage"]["codec"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    log:
        log_path("adapt/{method}/{corruption}/{shard}"),
    benchmark:
        benchmark_path("adapt/{method}/{corruption}/{shard}")
    script:
        "../workflow_scripts/adapt.py"
