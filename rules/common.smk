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
# The image sets each reverse process runs on: "unguided" is DDA without guidance, the misalignment check.
ADAPT_METHODS = {"dda": CORRUPTIONS + ["clean"], "diffpure": CORRUPTIONS, "unguided": ["clean"]}

if WORLD == "imagenet":
    raise WorkflowError(
        "world: imagenet validates but cannot run yet: reading ImageNet-C from disk and sampling the "
        "latent DiT through its VAE are not implemented in this version. "
        "Run the embedded world with --configfile presets/digits.yaml."
    )

wildcard_constraints:
    arch="|".join(ARCHS),
    corruption="|".join(CORRUPTIONS + ["clean"]),
    method="|".join(ADAPT_METHODS),
    shard=r"\d+",
    role="unconditional|generator",


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
    if WORLD == "digits":
        return f"{R}/models/source/{arch}.safetensors"
    return ARCHS[arch]["weights"]


def shard_stores(directory, num_shards):
    return [f"{directory}/shard-{k}.zarr" for k in range(num_shards)]


def generated_stores():
    return shard_stores(f"{R}/synthetic/generated", config["sampling"]["shards"])


def mod_stores():
    return shard_stores(f"{R}/synthetic/mod", config["adaptation"]["mod_shards"])


def clean_test_store():
    return f"{R}/data/digits/test.zarr"


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
    sets = {"clean": [clean_test_store()], "synthetic/generated": generated_stores(),
            "synthetic/mod": mod_stores()}
    for corruption in CORRUPTIONS:
        sets[f"target/{corruption}"] = [target_store(corruption)]
    for method, corruptions in ADAPT_METHODS.items():
        for corruption in corruptions:
            sets[f"{method}/{corruption}"] = adapted_stores(method, corruption)
    return sets


def preview_sets():
    """Rows of the preview grid: the same test images clean, corrupted and adapted, then the synthetic sets."""
    names = ["clean", "unguided/clean", "dda/clean"]
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
