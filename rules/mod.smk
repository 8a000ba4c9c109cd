# MoD (Mix of Diffusion): the generated images re-noised and denoised by the unconditional model
# with the DDA procedure (guidance towards each generated image included): rule adapt on the synthetic set.


use rule adapt as mod with:
    input:
        images=generated_stores(),
        checkpoint=denoiser_weights("unconditional"),
    output:
        directory(mod_store("{shard}")),
    log:
        log_path("mod/{shard}"),
    benchmark:
        benchmark_path("mod/{shard}")
    priority: 30
    params:
        process=process_settings("dda"),
        num_shards=config["adaptation"]["mod_shards"],
        stream="mod",
