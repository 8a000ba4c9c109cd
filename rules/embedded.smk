# The embedded worlds (digits, digit_scenes): the models a real run would download, trained here on the
# world's clean source split (rules/digits.smk, rules/digit_scenes.smk make it), and the target sets.


use rule finetune as train_source_classifier with:
    input:
        train=[world_store("train")],
    output:
        source_weights("{arch}"),
    log:
        log_path("train_source_classifier/{arch}"),
    benchmark:
        benchmark_path("train_source_classifier/{arch}")
    wildcard_constraints:
        arch="|".join(map(re.escape, ARCHS)),
    params:
        settings=lambda wc: ARCHS[wc.arch]["source_training"],
        trainings=[{"stores": [world_store("train")], "images_per_class": None}],


rule train_denoiser:
    input:
        train=world_store("train"),
    output:
        denoiser_weights("{role}"),
    log:
        log_path("train_denoiser/{role}"),
    benchmark:
        benchmark_path("train_denoiser/{role}")
    priority: 50
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        spec=lambda wc: DENOISER_SPECS[wc.role],
        settings=lambda wc: config["denoisers"][wc.role]["training"],
        conditional=lambda wc: wc.role == "generator",
        seed=SEED,
        device=job_device(uses_gpu=True),
    script:
        "../workflow_scripts/train_denoiser.py"


rule corrupt:
    input:
        clean=world_store("test"),
    output:
        corrupt_outputs(),
    log:
        log_path(f"corrupt/{job_folder('{corruption}')}"),
    benchmark:
        benchmark_path(f"corrupt/{job_folder('{corruption}')}")
    wildcard_constraints:
        corruption="|".join(CORRUPTIONS),
    conda:
        "../environment.yml"
    params:
        corruptions=lambda wc: job_sets(wc, CORRUPTIONS),
        severity=config["corruptions"]["severity"],
        limits=lambda wc: [
            config[WORLD]["validation_images"] if c in VALIDATION_CORRUPTIONS else None
            for c in job_sets(wc, CORRUPTIONS)
        ],
        seed=SEED,
        codec=config["storage"]["codec"],
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/corrupt.py"


rule shift:
    # a named target set made here (targets[].shift): the held-out split under a shift of its own
    input:
        clean=world_store("test"),
    output:
        directory(target_store("{target}")),
    log:
        log_path("shift/{target}"),
    benchmark:
        benchmark_path("shift/{target}")
    conda:
        "../environment.yml"
    params:
        shift=lambda wc: next(t["shift"] for t in config["targets"] if t["name"] == wc.target),
        seed=SEED,
        codec=config["storage"]["codec"],
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/shift.py"
