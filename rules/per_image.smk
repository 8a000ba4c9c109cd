# The per-image methods (sda_core.methods.PER_IMAGE_STAGES: MEMO adapts the source classifier to each
# target image on its own, GDA adapts each image under its guidance): one rule per registry entry, named
# after it, made from this one definition; a job per architecture, target set and shard, or per
# architecture and shard over every target set (target_jobs: grouped) (sda_core/jobs/per_image.py).


for name in PER_IMAGE_STAGES:

    rule:
        name:
            name
        input:
            unpack(per_image_inputs(name)),
        output:
            per_image_outputs(name),
        log:
            log_path(f"{name}/{{arch}}/{job_folder('{corruption}')}/{{shard}}"),
        benchmark:
            benchmark_path(f"{name}/{{arch}}/{job_folder('{corruption}')}/{{shard}}")
        conda:
            "../environment.yml"
        threads: JOB_THREADS
        resources:
            gpu=GPUS_PER_JOB,
        params:
            model=lambda wc: task_model(wc.arch),
            num_classes=NUM_CLASSES,
            settings=per_image_settings(name),
            preprocess=config["classifier_input"],
            images=config[name]["images"],
            batch_size=config[name]["batch_size"],
            num_shards=config[name]["shards"],
            targets=per_image_targets(name),
            seed=SEED,
            device=job_device(uses_gpu=True),
        script:
            "../workflow_scripts/per_image.py"
