# MoD (Mix of Diffusion): the generated images re-noised and denoised by the unconditional model
# with the DDA procedure (guidance towards each generated image included): rule adapt on the synthetic set.
# One job per shard and start timestep, or per shard over every MoD set (target_jobs: grouped).


use rule adapt as mod with:
    input:
        images=generated_stores(),
        checkpoint=denoiser_weights("unconditional"),
    output:
        mod_outputs(),
    log:
        log_path("mod/all/{shard}" if GROUPED else "mod/{shard}"),
    benchmark:
        benchmark_path("mod/all/{shard}" if GROUPED else "mod/{shard}")
    priority: 30
    params:
        sets=lambda wc: [mod_set(t) for t in mod_job_timesteps(wc)],
        num_shards=config["adaptation"]["mod_shards"],


if not GROUPED:

    # The matched-alignment study (studies.timesteps.matched_mod): MoD made from timestep t instead.
    use rule mod as mod_from_timestep with:
        output:
            directory(mod_store("{shard}", "{t}")),
        log:
            log_path("mod-t{t}/{shard}"),
        benchmark:
            benchmark_path("mod-t{t}/{shard}")
