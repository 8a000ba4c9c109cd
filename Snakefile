# SDA / DDA diffusion-driven test-time adaptation as cached, resumable, shardable stages.
#   snakemake --cores all                                   # the paper setup (config.yaml)
#   snakemake --cores all --configfile presets/digits.yaml  # the embedded digits world
#   snakemake --cores all --configfile presets/digit_scenes.yaml  # its scenes, for segmentation
from snakemake.utils import min_version

min_version("9.0")


# A --configfile given on the command line replaces config.yaml instead of being merged over it:
# presets are whole experiments, and no key of the paper setup leaks into them.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/sample.smk"
include: "rules/adapt.smk"
include: "rules/mod.smk"
include: "rules/finetune.smk"


if WORLD == "digits":

    include: "rules/digits.smk"

elif WORLD == "digit_scenes":

    include: "rules/digit_scenes.smk"


if EMBEDDED:

    include: "rules/embedded.smk"

else:

    include: "rules/imagenet.smk"


include: "rules/predict.smk"
include: "rules/per_image.smk"
include: "rules/score.smk"
include: "rules/gates.smk"


rule all:
    default_target: True
    input:
        RESULT_FILES,
