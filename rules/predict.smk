# Softmax outputs of f (source) and f' (fine-tuned) on every image set, stored once per architecture.


rule predict:
    input:
        images=sorted({store for stores in image_sets().values() for store in stores}),
        source=lambda wc: source_weights(wc.arch),
        finetuned=f"{R}/models/finetuned/{{arch}}.safetensors",
    output:
        f"{R}/predictions/{{arch}}.npz",
    params:
        image_sets=image_sets(),
        arch=lambda wc: ARCHS[wc.arch],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    log:
        log_path("predict/{arch}"),
    benchmark:
        benchmark_path("predict/{arch}")
    script:
        "../workflow_scripts/predict.py"
