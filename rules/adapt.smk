# Diffusion-driven adaptation of the target data: DDA (guided), DiffPure and unguided diffusion
# (the misalignment check on clean images), one job per process, corruption and shard, or one per shard
# over every adapted set (target_jobs: grouped).


rule adapt:
    input:
        images=adapt_inputs,
        checkpoint=denoiser_weights("unconditional"),
    output:
        adapt_outputs(),
    log:
        log_path(f"adapt/{job_folder('{process}/{corruption}')}/{{shard}}"),
    benchmark:
        benchmark_path(f"adapt/{job_folder('{process}/{corruption}')}/{{shard}}")
    # before MEMO and GDA (priority 0): a grouped adapt job is the longest job left once the source
    # models are trained, and started last it would run alone at the end of a 2-core run
    priority: 10
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        spec=DENOISER_SPECS["unconditional"],
        sets=adapt_sets,
        batch_size=config["adaptation"]["batch_size"],
        num_shards=config["adaptation"]["shards"],
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
        compile_mode=config["compile"],
        codec=config["storage"]["codec"],
    script:
        "../workflow_scripts/adapt.py"
