# SDA: fine-tune every layer of each source classifier on the MoD set. The digits world trains its
# source classifiers with the same rule (rules/digits.smk: train_source_classifier).


rule finetune:
    input:
        train=mod_stores(),
        init=source_weights("{arch}"),
    output:
        finetuned_weights("{arch}"),
    params:
        arch=lambda wc: ARCHS[wc.arch],
        settings=lambda wc: ARCHS[wc.arch]["finetune"],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=job_device(uses_gpu=True),
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    priority: 20
    log:
        log_path("finetune/{arch}"),
    benchmark:
        benchmark_path("finetune/{arch}")
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/train_classifier.py"
