# The per-image methods (sda_core.methods.PER_IMAGE_STAGES: MEMO adapts the source classifier to each
# target image on its own, GDA adapts each image under its guidance): one rule per registry entry, named
# after it, made from this one definition; a job per architecture, target set and shard, or per
# architecture and shard over every target set (target_jobs: grouped) (sda_core/jobs/per_image.py).


for name in PER_IMAGE_STAGES:

    rule:
        name:
            name
        input:
            unpack(per_image_inputs(name)),
        output:
            **per_image_outputs(name),
        log:
            log_path(f"{name}/{{arch}}/{job_folder('{corruption}')}/{{shard}}"),
        benchmark:
            benchmark_path(f"{name}/{{arch}}/{job_folder('{corruption}')}/{{shard}}")
        wildcard_constraints:
            corruption="|".join(PER_IMAGE_SETS),
        conda:
            "../environment.yml"
        threads: JOB_THREADS
        resources:
            gpu=GPUS_PER_JOB,
        params:
            **per_image_params(name, per_image_targets(name), config[name]["images"]),
        script:
            "../workflow_scripts/per_image.py"


if STUDIES.gda_aligned:

    # The gda_aligned study (sda_core.studies): MoD made by GDA's reverse process under each architecture's f,
    # on every generated image, one job per architecture and shard; f'_GDA learns from it (rules/finetune.smk).
    use rule gda as gda_mod with:
        input:
            unpack(per_image_inputs("gda", generated_stores())),
        output:
            **gda_mod_outputs(),
        log:
            log_path("gda-mod/{arch}/{shard}"),
        benchmark:
            benchmark_path("gda-mod/{arch}/{shard}")
        params:
            **per_image_params("gda", gda_mod_targets, None),


# f' (and f'_GDA of the gda_aligned study) on the adapted images of the per-image stages that store them
# (GDA's: "SDA on GDA" in sda_core.methods), one job per stage, architecture and target set, or over every set (grouped).
use rule predict as predict_per_image_adapted with:
    input:
        images=lambda wc: [
            store for stores in per_image_adapted_sets(wc.method, wc.arch, wc.group).values() for store in stores
        ],
        weights=lambda wc: [classifier_weights(model, wc.arch) for model in per_image_adapted_models()],
    output:
        per_image_adapted_predictions("{method}", "{arch}", "{group}"),
    log:
        log_path("predict/{method}-adapted/{arch}/{group}"),
    benchmark:
        benchmark_path("predict/{method}-adapted/{arch}/{group}")
    wildcard_constraints:
        method="|".join(name for name, stage in PER_IMAGE_STAGES.items() if stage.stores_images),
    params:
        image_sets=lambda wc: per_image_adapted_sets(wc.method, wc.arch, wc.group),
        models=lambda wc: {
            name: per_image_adapted_models() for name in per_image_adapted_sets(wc.method, wc.arch, wc.group)
        },
        weights=lambda wc: {model: classifier_weights(model, wc.arch) for model in per_image_adapted_models()},
        model=lambda wc: task_model(wc.arch),
        num_classes=NUM_CLASSES,
        preprocess=config["classifier_input"],
        device=job_device(uses_gpu=True),
        precision=config["precision"],
