# Configuration, validated against the schema (defaults filled in), and the helpers every rule uses.
from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml", set_default=True)

R = "results"
WORLD = config["world"]
SEED = config["seed"]
TEST_CORRUPTIONS = config["corruptions"]["test"]
VALIDATION_CORRUPTIONS = config["corruptions"]["validation"]
CORRUPTIONS = TEST_CORRUPTIONS + VALIDATION_CORRUPTIONS
ARCHS = {arch["name"]: arch for arch in config["architectures"]}
NUM_CLASSES = 10 if WORLD == "digits" else config["imagenet"]["num_classes"]
# What each model-running rule asks of `--resources gpu=N` (harmless where no gpu limit is given).
# Rules on the critical path (denoiser training -> sampling -> MoD -> fine-tuning) also carry a
# `priority:` so that they start before the many independent adaptation jobs.
GPUS_PER_JOB = 0 if config["device"] == "cpu" else 1
# Clean target images: the digits test split; for ImageNet a subset of val, when val_root is given.
HAS_CLEAN = WORLD == "digits" or config["imagenet"]["val_root"] is not None
CLEAN = ["clean"] if HAS_CLEAN else []
# The image sets each reverse process runs on: "unguided" is DDA without guidance, the misalignment check.
ADAPT_METHODS = {"dda": CORRUPTIONS + CLEAN, "diffpure": CORRUPTIONS, "unguided": CLEAN}
# What the scoring looks up: each corruption's sets, the clean sets, the synthetic sets.
SCORED_GROUPS = ["synthetic"] + CLEAN + CORRUPTIONS


def imagenet_classifier_weights():
    """Each architecture's weights file: the configured one, else timm's in the local HF cache (or None)."""
    from sda_core.sources import cached_pretrained_weights

    return {name: arch["weights"] or cached_pretrained_weights(arch["timm_name"]) for name, arch in ARCHS.items()}


if WORLD == "imagenet":
    from sda_core.sources import imagenet_requirements, missing_inputs_message

    CLASSIFIER_WEIGHTS = imagenet_classifier_weights()
    # once, where the run starts: a cluster job parses the workflow again on its node, which may not
    # see the Hugging Face cache (only the local rule import_classifier reads it)
    if workflow.is_main_process:
        missing = missing_inputs_message(imagenet_requirements(config, CLASSIFIER_WEIGHTS))
        if missing:
            raise WorkflowError(missing)

wildcard_constraints:
    arch="|".join(ARCHS),
    corruption="|".join(CORRUPTIONS + ["clean"]),
    method="|".join(ADAPT_METHODS),
    shard=r"\d+",
    role="unconditional|generator",
    group="|".join(["all"] + SCORED_GROUPS),


def log_path(name):
    return f"{R}/logs/{name}.log"


def benchmark_path(name):
    return f"{R}/benchmarks/{name}.tsv"


def denoiser_checkpoint(role):
    """digits: trained by the workflow; imagenet: the official weights named in the config."""
    if WORLD == "digits":
        return f"{R}/models/{role}.safetensors"
    return config["denoisers"][role]["checkpoint"]


def source_weights(arch):
    """digits: trained by the workflow; imagenet: the published weights, imported (rules/imagenet.smk)."""
    return f"{R}/models/source/{arch}.safetensors"


def shard_stores(directory, num_shards):
    return [f"{directory}/shard-{k}.zarr" for k in range(num_shards)]


def generated_stores():
    return shard_stores(f"{R}/synthetic/generated", config["sampling"]["shards"])


def mod_stores():
    return shard_stores(f"{R}/synthetic/mod", config["adaptation"]["mod_shards"])


def clean_test_store():
    return f"{R}/data/digits/test.zarr" if WORLD == "digits" else f"{R}/target/clean.zarr"


def target_store(corruption):
    return clean_test_store() if corruption == "clean" else f"{R}/target/{corruption}.zarr"


def adapted_stores(method, corruption):
    return shard_stores(f"{R}/adapted/{method}/{corruption}", config["adaptation"]["shards"])


def adaptation_settings(method):
    """Respacing, start and guidance of each reverse process run on data (DESIGN.md 1.4, baselines)."""
    dda = config["adaptation"]
    if method == "diffpure":
        return {"respacing": config["diffpure"]["respacing"], "steps": None, "t": config["diffpure"]["t"],
                "noise_index": "matched", "guidance": None}
    guidance = dda["guidance"] if method == "dda" else {**dda["guidance"], "scale": 0.0}
    return {"respacing": dda["respacing"], "steps": dda["steps"], "t": None,
            "noise_index": dda["noise_index"], "guidance": guidance}


def image_sets():
    """Every image set a classifier is scored on, by the name the ensembles use."""
    sets = {"synthetic/generated": generated_stores(), "synthetic/mod": mod_stores()}
    if HAS_CLEAN:
        sets["clean"] = [clean_test_store()]
    for corruption in CORRUPTIONS:
        sets[f"target/{corruption}"] = [target_store(corruption)]
    for method, corruptions in ADAPT_METHODS.items():
        for corruption in corruptions:
            sets[f"{method}/{corruption}"] = adapted_stores(method, corruption)
    return sets


def prediction_groups():
    """The image sets classified together, one predict job per group and architecture. per_corruption:
    each corruption's target and adapted sets (what its ensembles combine), clean with its adaptations,
    the synthetic sets; per_architecture: everything in one job ("all"), for small worlds."""
    names = list(image_sets())
    if config["predict"]["jobs"] == "per_architecture":
        return {"all": names}
    groups = {"synthetic": [name for name in names if name.startswith("synthetic/")]}
    for corruption in CLEAN + CORRUPTIONS:
        groups[corruption] = [name for name in names if name == corruption or name.endswith(f"/{corruption}")]
    return groups


def prediction_file(arch, group):
    return f"{R}/predictions/{arch}/{group}.npz"


def prediction_files():
    """arch -> scored group -> the file holding it."""
    groups = prediction_groups()
    return {arch: {key: prediction_file(arch, key if key in groups else "all") for key in SCORED_GROUPS}
            for arch in ARCHS}


def preview_sets():
    """Rows of the preview grid: the same test images clean, corrupted and adapted, then the synthetic sets."""
    names = ["clean", "unguided/clean", "dda/clean"] if HAS_CLEAN else []
    for corruption in TEST_CORRUPTIONS[:2]:
        names += [f"target/{corruption}", f"dda/{corruption}", f"diffpure/{corruption}"]
    names += ["synthetic/generated", "synthetic/mod"]
    sets = image_sets()
    return {name: sets[name] for name in names}


TABLE = f"{R}/tables/{WORLD}_c.csv"
PAIRED_TABLE = f"{R}/tables/{WORLD}_c_paired.csv"
SANITY_TABLE = f"{R}/tables/{WORLD}_sanity.csv"
PLOT = f"{R}/plots/{WORLD}_c.png"
PREVIEW = f"{R}/plots/{WORLD}_preview.png"
RESULT_FILES = [TABLE, PAIRED_TABLE, SANITY_TABLE, PLOT, PREVIEW]
