# The embedded digits world: its clean source and target splits (the rest of it: rules/embedded.smk).


rule prepare_digits:
    output:
        train=directory(world_store("train")),
        test=directory(world_store("test")),
    log:
        log_path("prepare_digits"),
    conda:
        "../environment.yml"
    params:
        resolution=config["digits"]["resolution"],
        test_fraction=config["digits"]["test_fraction"],
        seed=SEED,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/prepare_digits.py"
