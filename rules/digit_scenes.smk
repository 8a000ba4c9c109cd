# The digit-scenes world (segmentation): source and target scenes with their label maps, made here
# (sda_core/data/digit_scenes.py); its models and target sets: rules/embedded.smk.


rule prepare_digit_scenes:
    output:
        train=directory(world_store("train")),
        test=directory(world_store("test")),
    log:
        log_path("prepare_digit_scenes"),
    conda:
        "../environment.yml"
    params:
        resolution=config["digit_scenes"]["resolution"],
        test_fraction=config["digit_scenes"]["test_fraction"],
        train_scenes=config["digit_scenes"]["train_scenes"],
        test_scenes=config["digit_scenes"]["test_scenes"],
        seed=SEED,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/prepare_digit_scenes.py"
