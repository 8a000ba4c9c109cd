# The embedded digits world: data, corruptions and the models a real run would download, made here.


rule prepare_digits:
    output:
        train=directory(f"{R}/data/digits/train.zarr"),
        test=directory(f"{R}/data/digits/test.zarr"),
    params:
        resolution=config["digits"]["resolution"],
        test_fraction=config["digits"]["test_fraction"],
        seed=SEED,
    log:
        log_path("prepare_digits"),
    script:
        "../workflow_scripts/prepare_digits.py"


rule train_source_classifier:
    input:
        train=[rules.prepare_digits.output.train],
    output:
        f"{R}/models/source/{{arch}}.safetensors",
    params:
        arch=lambda wc: ARCHS[wc.arch],
        settings=lambda wc: ARCHS[wc.arch]["source_training"],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    priority: 20
    log:
        log_path("train_source_classifier/{arch}"),
    benchmark:
        benchmark_path("train_source_classifier/{arch}")
    script:
        "../workflow_scripts/train_classifier.py"


rule train_denoiser:
    input:
        train=rules.prepare_digits.output.train,
    output:
        f"{R}/models/{{role}}.safetensors",
    params:
        spec=lambda wc: config["denoisers"][wc.role]["spec"],
        settings=lambda wc: config["denoisers"][wc.role]["training"],
        class_conditional=lambda wc: wc.role == "generator",
        seed=SEED,
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    priority: 50
    log:
        log_path("train_denoiser/{role}"),
    benchmark:
        benchmark_path("train_denoiser/{role}")
    script:
        "../workflow_scripts/train_denoiser.py"


rule corrupt:
    # One job for all corruptions: each costs seconds, less than a job's start-up.
    input:
        clean=rules.prepare_digits.output.test,
    output:
        [directory(target_store(c)) for c in CORRUPTIONS],
    params:
        outputs={c: target_store(c) for c in CORRUPTIONS},
        severity=config["corruptions"]["severity"],
        limits={c: config["digits"]["validation_images"] for c in VALIDATION_CORRUPTIONS},
        seed=SEED,
        codec=config["storage"]["codec"],
    log:
        log_path("corrupt"),
    benchmark:
        benchmark_path("corrupt")
    script:
        "../workflow_scripts/corrupt.py"
