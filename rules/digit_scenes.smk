# The digit-scenes world (segmentation): source (train) and target (test) scenes with their label maps,
# made here (sda_core/data/digit_scenes.py), one job per split: each split's scenes are seeded by their
# own index, so a change of one split's count remakes that split and what reads it, not the other.
# Its models and target sets: rules/embedded.smk.


rule prepare_digit_scenes:
    output:
        directory(world_store("{split}")),
    log:
        log_path("prepare_digit_scenes/{split}"),
    wildcard_constraints:
        split="train|test",
    conda:
        "../environment.yml"
    params:
        resolution=config["digit_scenes"]["resolution"],
        test_fraction=config["digit_scenes"]["test_fraction"],
        scenes=lambda wc: config["digit_scenes"][f"{wc.split}_scenes"],
        seed=SEED,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/prepare_digit_scenes.py"
