# Softmax outputs of f (source), f' (fine-tuned) and the study variants of f' (IMAGE_SETS.models_of says
# which model scores which set), stored once per architecture and group of image sets.


rule predict:
    input:
        images=lambda wc: [store for name in prediction_groups()[wc.group] for store in image_set_stores()[name]],
        weights=lambda wc: list(prediction_weights(wc.arch, wc.group).values()),
    output:
        prediction_file("{arch}", "{group}"),
    log:
        log_path("predict/{arch}/{group}"),
    benchmark:
        benchmark_path("predict/{arch}/{group}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        image_sets=lambda wc: {name: image_set_stores()[name] for name in prediction_groups()[wc.group]},
        models=lambda wc: {name: scoring_models(wc.arch, name) for name in prediction_groups()[wc.group]},
        weights=lambda wc: prediction_weights(wc.arch, wc.group),
        model=lambda wc: task_model(wc.arch),
        settings=lambda wc: KINDS_OF[wc.arch].predict_settings(ARCHS[wc.arch]),
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        device=job_device(uses_gpu=True),
        precision=config["precision"],
    script:
        "../workflow_scripts/predict.py"
