# Ensembles, accuracy tables with intervals, sanity figures and the plot.


rule score:
    input:
        sorted({path for files in prediction_files().values() for path in files.values()}),
    output:
        table=report(TABLE, caption="../report/accuracy.rst", category="Results"),
        paired=report(PAIRED_TABLE, caption="../report/paired.rst", category="Results"),
        sanity=report(SANITY_TABLE, caption="../report/sanity.rst", category="Results"),
        plot=report(PLOT, caption="../report/plot.rst", category="Results"),
    params:
        prediction_files=prediction_files(),
        test=TEST_CORRUPTIONS,
        validation=VALIDATION_CORRUPTIONS,
        severity=config["corruptions"]["severity"],
        title=f"{WORLD}-C, severity {config['corruptions']['severity']}",
    log:
        log_path("score"),
    script:
        "../workflow_scripts/score.py"


rule preview:
    input:
        images=lambda wc: sorted({store for stores in preview_sets().values() for store in stores}),
    output:
        report(PREVIEW, caption="../report/preview.rst", category="Sanity"),
    params:
        image_sets=preview_sets(),
    log:
        log_path("preview"),
    script:
        "../workflow_scripts/preview.py"
