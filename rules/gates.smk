# The quality gates on the sanity figures (top-1, or mIoU for segmentation): fail the run, or warn.


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
        metric=TASK.metric,
        device=job_device(uses_gpu=False),
    script:
        "../workflow_scripts/gates.py"
