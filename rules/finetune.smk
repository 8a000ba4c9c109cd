# SDA: fine-tune every layer of each source classifier on the MoD set.


rule finetune:
    input:
        train=mod_stores(),
        init=lambda wc: source_weights(wc.arch),
    output:
        f"{R}/models/finetuned/{{arch}}.safetensors",
    params:
        arch=lambda wc: ARCHS[wc.arch],
        settings=lambda wc: ARCHS[wc.arch]["finetune"],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    priority: 20
    log:
        log_path("finetune/{arch}"),
    benchmark:
        benchmark_path("finetune/{arch}")
    script:
        "../workflow_scripts/train_classifier.py"
