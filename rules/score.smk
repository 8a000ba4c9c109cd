# Ensembles, accuracy tables with intervals, sanity figures and the plot.


rule score:
    input:
        sorted({path for files in prediction_files().values() for path in files.values()}),
    output:
        table=report(table_file("c"), caption="../report/accuracy.rst", category="Results"),
        paired=report(table_file("c_paired"), caption="../report/paired.rst", category="Results"),
        sanity=report(table_file("sanity"), caption="../report/sanity.rst", category="Results"),
        plot=report(plot_file("c"), caption="../report/plot.rst", category="Results"),
        provenance=report(provenance_file(), caption="../report/provenance.rst", category="Results"),
    log:
        log_path("score"),
    conda:
        "../environment.yml"
    params:
        prediction_files=prediction_files(),
        test=TEST_CORRUPTIONS,
        validation=VALIDATION_CORRUPTIONS,
        severity=config["corruptions"]["severity"],
        has_clean=HAS_CLEAN,
        config=config,
        title=f"{WORLD}-C, severity {config['corruptions']['severity']}",
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/score.py"


rule preview:
    input:
        images=lambda wc: sorted({store for stores in preview_sets().values() for store in stores}),
    output:
        report(plot_file("preview"), caption="../report/preview.rst", category="Sanity"),
    log:
        log_path("preview"),
    conda:
        "../environment.yml"
    params:
        image_sets=preview_sets(),
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/preview.py"


rule gates:
    input:
        sanity=table_file("sanity"),
    output:
        report(table_file("gates"), caption="../report/gates.rst", category="Sanity"),
    log:
        log_path("gates"),
    conda:
        "../environment.yml"
    params:
        gates=config["gates"],
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/gates.py"
