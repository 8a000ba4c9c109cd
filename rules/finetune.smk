# SDA: fine-tune every layer of each source classifier on the MoD set (f'), and the study variants of
# f' (sda_core.studies): on the generated images alone (f_c'), on class-balanced subsets of the MoD set,
# on MoD made from another timestep (f'_t). One job per model and architecture, or per architecture
# over all its fine-tuned models (target_jobs: grouped). The embedded worlds train their source
# classifiers with the same rule (rules/embedded.smk: train_source_classifier).


rule finetune:
    input:
        train=lambda wc: [store for model in finetune_job_models(wc) for store in finetune_data(model, wc.arch)],
        init=source_weights("{arch}"),
    output:
        finetune_outputs(),
    log:
        log_path(f"finetune/{job_folder('{model}')}/{{arch}}"),
    benchmark:
        benchmark_path(f"finetune/{job_folder('{model}')}/{{arch}}")
    wildcard_constraints:
        arch=archs_of_kind("timm"),
    priority: 20
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    resources:
        gpu=GPUS_PER_JOB,
    params:
        model=lambda wc: task_model(wc.arch),
        settings=lambda wc: KINDS_OF[wc.arch].finetune_settings(ARCHS[wc.arch]),
        trainings=lambda wc: [
            {"stores": finetune_data(model, wc.arch), "images_per_class": STUDIES.subset_sizes.get(model)}
            for model in finetune_job_models(wc)
        ],
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        seed=SEED,
        device=job_device(uses_gpu=True),
        precision=config["precision"],
    script:
        "../workflow_scripts/train_model.py"


# A vlm's fine-tuned models (its LoRA f' and the LoRA-on-source control: sda_core.models.kinds): the
# same job, whose script runs the kind's trainer; a rule of its own for its own outputs when grouped.
use rule finetune as finetune_vlm with:
    output:
        finetune_outputs("vlm"),
    wildcard_constraints:
        arch=archs_of_kind("vlm"),
