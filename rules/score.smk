# Ensembles, tables with intervals (the task's: top-1 or mIoU), sanity figures, the plot and the preview;
# for classification also the named targets' tables, the timestep study and the claims.


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
        settings=score_settings(),
        config=config,
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
        per_image=PER_IMAGE_ARCHS,
        processes=TARGET_PROCESSES,
        studies=SCORED_ROWS,
        models=ARCH_MODELS,
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
        images=sorted({store for _, stores, _ in preview_rows().values() for store in stores or []}),
        predictions=sorted(set(preview_prediction_files().values())),
    output:
        report(plot_file("preview"), caption=f"../report/{TASK.preview_caption}", category="Sanity"),
    log:
        log_path("preview"),
    conda:
        "../environment.yml"
    params:
        rows=preview_rows(),
        prediction_files=preview_prediction_files(),
        num_classes=NUM_CLASSES,
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
