# Ensembles, accuracy tables with intervals, sanity figures and the plot.


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
        has_clean=HAS_CLEAN,
        variants=STUDIES.variants,
        fusions=STUDIES.fusions,
        memo=config["memo"]["enabled"],
        gda_archs=GDA_ARCHS,
        config=config,
        title=f"{WORLD}-C, severity {config['corruptions']['severity']}",
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/score.py"


rule score_target:
    input:
        lambda wc: sorted(
            {path for files in target_prediction_files(wc.target).values() for path in prediction_inputs(files)}
        ),
    output:
        table=report(table_file("{target}"), caption="../report/target.rst", category="Results"),
        paired=report(table_file("{target}_paired"), caption="../report/target_paired.rst", category="Results"),
    log:
        log_path("score_target/{target}"),
    conda:
        "../environment.yml"
    params:
        prediction_files=lambda wc: target_prediction_files(wc.target),
        variants=STUDIES.variants,
        memo=config["memo"]["enabled"],
        gda_archs=GDA_ARCHS,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/score_target.py"


rule score_timesteps:
    input:
        sorted({path for files in timestep_prediction_files().values() for path in files.values()}),
    output:
        table=report(table_file("timesteps"), caption="../report/timesteps.rst", category="Studies"),
        gain=report(table_file("timesteps_gain"), caption="../report/timesteps_gain.rst", category="Studies"),
        plot=report(plot_file("timesteps"), caption="../report/timesteps_plot.rst", category="Studies"),
    log:
        log_path("score_timesteps"),
    conda:
        "../environment.yml"
    params:
        prediction_files=timestep_prediction_files(),
        sets=timestep_sets(),
        matched=STUDIES.matched,
        title=f"{WORLD}: clean images re-noised from t and denoised",
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/score_timesteps.py"


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


rule claims:
    input:
        paired=table_file("c_paired"),
        gains=[table_file("timesteps_gain")] if STUDIES.sweep else [],
    output:
        report(table_file("claims"), caption="../report/claims.rst", category="Studies"),
    log:
        log_path("claims"),
    conda:
        "../environment.yml"
    params:
        configured_t=next((level.t for level in STUDIES.sweep if level.configured), None),
        matched=STUDIES.matched,
        generated_only=STUDIES.generated_only_label,
        smallest_subset=STUDIES.smallest_subset_label,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/claims.py"
