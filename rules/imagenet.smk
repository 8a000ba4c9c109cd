# ImageNet-C (or ImageNet val corrupted here) into image stores at the diffusion model's size: one job
# per corruption, plus "clean", a small class-balanced subset of val for the sanity checks.


# The file list of every folder an import reads, rewritten (new time stamp) only when it changed: a
# completed or corrected folder is re-imported. Once, where the run starts (jobs on cluster nodes
# parse the workflow again).
if workflow.is_main_process:
    from sda_core.data.imagenet import folder_manifest, update_manifest

    for images in IMAGE_SETS.clean + CORRUPTIONS + TARGETS:
        update_manifest(image_manifest(images), folder_manifest(imagenet_folder(config, images)[0]))
        if is_pre_adapted(images):
            update_manifest(image_manifest(f"dda-imported/{images}"), folder_manifest(adapted_folder(config, images)))


rule import_images:
    input:
        folder=lambda wc: imagenet_folder(config, wc.corruption)[0],
        manifest=image_manifest("{corruption}"),
        subset=subset_inputs,
    output:
        directory(target_store("{corruption}")),
    log:
        log_path("import_images/{corruption}"),
    benchmark:
        benchmark_path("import_images/{corruption}")
    conda:
        "../environment.yml"
    threads: JOB_THREADS
    params:
        num_classes=NUM_CLASSES,
        size=DENOISER_SPECS["unconditional"]["image_size"],
        images_per_class=lambda wc: (
            config["imagenet"]["clean_images_per_class"]
            if wc.corruption == image_sets.CLEAN
            else config["imagenet"]["images_per_class"]
        ),
        from_imagenet_val=lambda wc: imagenet_folder(config, wc.corruption)[1],
        corruption=lambda wc: (
            wc.corruption if wc.corruption in CORRUPTIONS and config["imagenet"]["target"] == "imagenet_val" else None
        ),
        severity=config["corruptions"]["severity"],
        skip_unreadable=config["imagenet"]["skip_unreadable"],
        allow_uneven_classes=config["imagenet"]["allow_uneven_classes"],
        subset_file=lambda wc: subset_file(wc.corruption),
        seed=lambda wc: SEED if target_uses_seed(wc.corruption) else 0,  # shared by all seeds when unused
        codec=config["storage"]["codec"],
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/import_images.py"


rule import_classifier:
    # A local rule: on a cluster the Hugging Face cache need only be visible on the submit host.
    input:
        weights=lambda wc: str(CLASSIFIER_WEIGHTS[wc.arch]),
    output:
        source_weights("{arch}"),
    log:
        log_path("import_classifier/{arch}"),
    localrule: True
    conda:
        "../environment.yml"
    params:
        model=lambda wc: task_model(wc.arch),
        weights_format=lambda wc: ARCHS[wc.arch]["weights_format"],
        num_classes=NUM_CLASSES,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/import_classifier.py"


use rule import_classifier as import_finetuned with:
    # a released f' (architectures[].finetuned_weights) in place of fine-tuning that architecture here
    input:
        weights=lambda wc: ARCHS[wc.arch]["finetuned_weights"],
    output:
        released_finetuned_weights("{arch}"),
    log:
        log_path("import_finetuned/{arch}"),
    wildcard_constraints:
        arch="|".join(name for name, arch in ARCHS.items() if arch["finetuned_weights"]) or "(?!)",


use rule import_images as import_adapted with:
    # a pre-adapted DDA set (imagenet.adapted_root): the adapted copies of the target set's images, in its order
    input:
        folder=lambda wc: imagenet_folder(config, wc.corruption)[0],
        manifest=image_manifest("{corruption}"),
        adapted=lambda wc: adapted_folder(config, wc.corruption),
        adapted_manifest=image_manifest("dda-imported/{corruption}"),
        subset=subset_inputs,
    output:
        directory(imported_adapted_store("{corruption}")),
    log:
        log_path("import_adapted/{corruption}"),
    benchmark:
        benchmark_path("import_adapted/{corruption}")
    wildcard_constraints:
        corruption="|".join([c for c in CORRUPTIONS + TARGETS if is_pre_adapted(c)]) or "(?!)",
