# MoD (Mix of Diffusion): the generated images re-noised and denoised by the unconditional model
# with the DDA procedure, guidance towards each generated image included.


rule mod:
    input:
        images=generated_stores(),
        checkpoint=denoiser_checkpoint("unconditional"),
    output:
        directory(f"{R}/synthetic/mod/shard-{{shard}}.zarr"),
    params:
        spec=config["denoisers"]["unconditional"]["spec"],
        settings=adaptation_settings("dda"),
        batch_size=config["adaptation"]["batch_size"],
        num_shards=config["adaptation"]["mod_shards"],
        stream="mod",
        seed=SEED,
        device=config["device"],
        precision=config["precision"],
        codec=config["storage"]["codec"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    priority: 30
    log:
        log_path("mod/{shard}"),
    benchmark:
        benchmark_path("mod/{shard}")
    script:
        "../workflow_scripts/adapt.py"
