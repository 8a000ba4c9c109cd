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
        sets=[{"inputs": generated_stores(), "process": process_settings("dda"), "stream": "mod"}],
        num_shards=config["adaptation"]["mod_shards"],


# The matched-alignment study (studies.timesteps.matched_mod): MoD made from timestep t instead.
use rule mod as mod_from_timestep with:
    output:
        directory(mod_store("{shard}", "{t}")),
    log:
        log_path("mod-t{t}/{shard}"),
    benchmark:
        benchmark_path("mod-t{t}/{shard}")
    params:
        sets=lambda wc: [
            {
                "inputs": generated_stores(),
                "process": process_settings(image_sets.swept("dda", int(wc.t))),
                "stream": f"mod-t{wc.t}",
            }
        ],
        num_shards=config["adaptation"]["mod_shards"],
