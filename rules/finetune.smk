# SDA: fine-tune every layer of each source classifier on the MoD set (f'), and the study variants of
# f' (sda_core.studies): on the generated images alone (f_c'), on class-balanced subsets of the MoD set,
# on MoD made from another timestep (f'_t). The digits world trains its source classifiers with the
# same rule (rules/digits.smk: train_source_classifier).


rule finetune:
    input:
        train=lambda wc: finetune_data(wc.model),
        init=source_weights("{arch}"),
    output:
        classifier_weights("{model}", "{arch}"),
    log:
        log_path("finetune/{model}/{arch}"),
    benchmark:
        benchmark_path("finetune/{model}/{arch}")
    priority: 20
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=lambda wc: task_model(wc.arch),
        settings=lambda wc: ARCHS[wc.arch]["finetune"],
        images_per_class=lambda wc: STUDIES.subset_sizes.get(wc.model),
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
    script:
        "../workflow_scripts/train_model.py"
