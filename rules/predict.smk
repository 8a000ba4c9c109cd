# Softmax outputs of f (source) and f' (fine-tuned), stored once per architecture and group of image sets.


rule predict:
    input:
        images=lambda wc: [store for name in prediction_groups()[wc.group] for store in image_sets()[name]],
        source=lambda wc: source_weights(wc.arch),
        finetuned=f"{R}/models/finetuned/{{arch}}.safetensors",
    output:
        prediction_file("{arch}", "{group}"),
    params:
        image_sets=lambda wc: {name: image_sets()[name] for name in prediction_groups()[wc.group]},
        arch=lambda wc: ARCHS[wc.arch],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    log:
        log_path("predict/{arch}/{group}"),
    benchmark:
        benchmark_path("predict/{arch}/{group}")
    script:
        "../workflow_scripts/predict.py"
