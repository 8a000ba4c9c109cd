# Task segmentation: mIoU tables with bootstrap intervals over scenes, the paired differences, the sanity
# figures and the plot (sda_core/jobs/score_segmentation.py).


rule score:
    input:
        sorted({path for files in corruption_prediction_files().values() for path in prediction_inputs(files)}),
    output:
        **score_outputs(),
    log:
        log_path("score"),
    conda:
        "../environment.yml"
    params:
        prediction_files=corruption_prediction_files(),
        test=TEST_CORRUPTIONS,
        validation=VALIDATION_CORRUPTIONS,
        severity=config["corruptions"]["severity"],
        num_classes=NUM_CLASSES,
        seed=SEED,
        config=config,
        title=f"{WORLD}-C, severity {config['corruptions']['severity']}",
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/score_segmentation.py"


rule preview:
    input:
        images=sorted({store for _, stores, _ in segmentation_preview_rows().values() for store in stores or []}),
        predictions=sorted(set(prediction_files()[list(ARCHS)[0]].values())),
    output:
        report(plot_file("preview"), caption="../report/preview_segmentation.rst", category="Sanity"),
    log:
        log_path("preview"),
    conda:
        "../environment.yml"
    params:
        rows=segmentation_preview_rows(),
        prediction_files=prediction_files()[list(ARCHS)[0]],
        num_classes=NUM_CLASSES,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/preview_segmentation.py"
