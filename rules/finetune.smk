# SDA: fine-tune every layer of each source classifier on the MoD set. The digits world trains its
# source classifiers with the same rule (rules/digits.smk: train_source_classifier).


rule finetune:
    input:
        train=mod_stores(),
        init=source_weights("{arch}"),
    output:
        finetuned_weights("{arch}"),
    log:
        log_path("finetune/{arch}"),
    benchmark:
        benchmark_path("finetune/{arch}")
    priority: 20
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=lambda wc: classifier_model(wc.arch),
        settings=lambda wc: ARCHS[wc.arch]["finetune"],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=job_device(uses_gpu=True),
    script:
        "../workflow_scripts/train_classifier.py"
