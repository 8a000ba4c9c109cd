# Configuration, validated against the schema (defaults filled in), and the helpers every rule uses.
# Every output path is spelled once, in a function below; rules call it with wildcards ("{shard}").
import re

from snakemake.utils import validate

from sda_core import image_sets
from sda_core.config_checks import config_problems, problems_message, schema_problem, unknown_timm_models
from sda_core.processes import reverse_process
from sda_core.methods import PER_IMAGE_STAGES
from sda_core.models.kinds import KINDS, kind_of
from sda_core.models.specs import resolve_spec
from sda_core.seed_runs import seed_folder, table_path
from sda_core.external_inputs import adapted_folder, imagenet_folder
from sda_core.studies import Studies
from sda_core.worlds import generated_maps, is_embedded, num_classes, other_world_in, task_of

try:
    validate(config, "../schemas/config.schema.yaml", set_default=True)
except WorkflowError as error:
    raise WorkflowError(schema_problem(error)) from None

RESULTS = "results"  # every output of the workflow lies under it
WORLD = config["world"]
# the task the world poses (sda_core.tasks): every rule that differs between tasks asks it
TASK = task_of(WORLD)
EMBEDDED = is_embedded(WORLD)  # data and models made here
SEED = config["seed"]
# What a seed makes lies in its own folder (seed 0: RESULTS itself), so that several seeds sit side by
# side (tools/seeds.py); what no seed changes (ImageNet imports, manifests) is shared in RESULTS.
RUN = seed_folder(RESULTS, SEED)
TEST_CORRUPTIONS = config["corruptions"]["test"]
VALIDATION_CORRUPTIONS = config["corruptions"]["validation"]
CORRUPTIONS = TEST_CORRUPTIONS + VALIDATION_CORRUPTIONS
# named target sets (e.g. ImageNet-W): adapted, predicted and scored like a corruption, in tables of their own
TARGETS = [target["name"] for target in config["targets"]]
ARCHS = {arch["name"]: arch for arch in config["architectures"]}
KINDS_OF = {name: kind_of(arch) for name, arch in ARCHS.items()}  # sda_core.models.kinds
NUM_CLASSES = num_classes(config)
# what the schema cannot say, all at once and before any job (sda_core.config_checks)
CONFIG_PROBLEMS = config_problems(config, NUM_CLASSES)
if WORLD == "imagenet" and workflow.is_main_process:
    CONFIG_PROBLEMS += unknown_timm_models(config)  # else reported as a missing download
CONFIG_PROBLEMS += [problem for problem in [other_world_in(RESULTS, WORLD)] if problem]
if CONFIG_PROBLEMS:
    raise WorkflowError(problems_message(CONFIG_PROBLEMS))
DENOISER_SPECS = {role: resolve_spec(config["denoisers"][role]["spec"]) for role in ("unconditional", "generator")}
# Clean target images: the digits test split; for ImageNet a subset of val, when val_root is given.
HAS_CLEAN = EMBEDDED or config["imagenet"]["val_root"] is not None
# the studies beside the main table (sda_core.studies): their image sets, models and methods
STUDIES = Studies.from_config(config, HAS_CLEAN)
# the registry rows a run scores beyond the methods (sda_core.methods.ScoredMethod.study): the studies'
# and the model kinds' own (a vlm's LoRA on source)
SCORED_ROWS = sorted(STUDIES.scored() | {row for kind in KINDS_OF.values() for row in kind.scored_rows})
SYNTHETIC = image_sets.makes_synthetic_sets(config)
IMAGE_SETS = image_sets.RunImageSets(
    tuple(CORRUPTIONS + TARGETS),
    HAS_CLEAN,
    STUDIES.sweep,
    STUDIES.matched,
    tuple(STUDIES.variants.values()),
    diffpure=config["diffpure"]["enabled"],
    synthetic=SYNTHETIC,
)
# the reverse processes run on the target sets (the methods reading another's sets are not scored)
TARGET_PROCESSES = [
    process for process, sets in IMAGE_SETS.processed().items() if set(sets) & set(CORRUPTIONS + TARGETS)
]
# What a model-running rule asks of `--resources gpu=N` (harmless where no gpu limit is given).
# Rules on the critical path (denoiser training -> sampling -> MoD -> fine-tuning) also carry a
# `priority:` so that they start before the many independent adaptation jobs.
GPUS_PER_JOB = 0 if config["device"] == "cpu" else 1
# each per-image method (sda_core.methods.PER_IMAGE_STAGES: memo, gda) -> the architectures the run makes
# it for (none where it is switched off; gda.architectures)
PER_IMAGE_ARCHS = {name: stage.architectures(config) for name, stage in PER_IMAGE_STAGES.items()}
JOB_THREADS = config["threads"]
# target_jobs: grouped makes one job of all the target sets of corrupt, adapt and each per-image method
# (per architecture, reverse process and shard) instead of one per set: the same outputs, fewer start-ups
GROUPED = config["target_jobs"] == "grouped"
PER_IMAGE_SETS = CORRUPTIONS + TARGETS  # the target sets the per-image methods predict


def task_model(arch):
    """What builds an architecture's model (its kind's and the task's: sda_core.models.kinds,
    sda_core.tasks): its params, apart from the training settings (so that a change of the fine-tuning
    recipe does not retrain or re-import the source model)."""
    return KINDS_OF[arch].params(ARCHS[arch], config) | TASK.model_params(ARCHS[arch])


def arch_models(arch):
    """The fine-tuned models of an architecture: the run's (f' and the studies' variants) that its kind
    makes, and the kind's own controls (a vlm's LoRA on source)."""
    return KINDS_OF[arch].finetuned_models(STUDIES.finetuned_models())


# arch -> every model it has (the scoring leaves out the methods that read another)
ARCH_MODELS = {arch: [image_sets.SOURCE, *arch_models(arch)] for arch in ARCHS}


def scoring_models(arch, name):
    """The models that score an image set for an architecture (its kind's choice of the run's)."""
    return KINDS_OF[arch].scoring_models(name, IMAGE_SETS.models_of(name))


def archs_of_kind(kind):
    """A wildcard constraint: the architectures of a kind (a pattern matching nothing if none)."""
    return "|".join(re.escape(arch) for arch, arch_kind in KINDS_OF.items() if arch_kind.name == kind) or "(?!)"


def job_device(uses_gpu):
    """The device a rule's job may use: the configured one for a rule with the gpu resource, else the
    CPU, so that a CPU job never claims (or waits for) a GPU (sda_core.runtime.start_job)."""
    return config["device"] if uses_gpu else "cpu"


def imagenet_classifier_weights():
    """Each architecture's weights file: the configured one, else timm's in the local HF cache (or None)."""
    from sda_core.external_inputs import cached_pretrained_weights

    return {name: arch["weights"] or cached_pretrained_weights(arch["timm_name"]) for name, arch in ARCHS.items()}


if WORLD == "imagenet":
    from sda_core.data.imagenet import class_map_disagreement
    from sda_core.external_inputs import imagenet_requirements, imagenet_set_folders, missing_inputs_message

    CLASSIFIER_WEIGHTS = imagenet_classifier_weights()
    # once, where the run starts: a cluster job parses the workflow again on its node, which may not
    # see the Hugging Face cache (only the local rule import_classifier reads it)
    if workflow.is_main_process:
        missing = missing_inputs_message(imagenet_requirements(config, CLASSIFIER_WEIGHTS))
        if missing:
            raise WorkflowError(missing)
        disagreement = class_map_disagreement(imagenet_set_folders(config))
        if disagreement:
            raise WorkflowError(disagreement)


wildcard_constraints:
    arch="|".join(map(re.escape, ARCHS)),
    corruption="|".join(CORRUPTIONS + TARGETS + [image_sets.CLEAN]),
    target="|".join(TARGETS) or "(?!)",  # (?!) matches nothing: no named targets
    process="|".join(IMAGE_SETS.processed()),
    model="|".join(dict.fromkeys(model for arch in ARCHS for model in arch_models(arch))),
    t=r"\d+",
    shard=r"\d+",
    role="unconditional|generator",
    group="|".join([image_sets.ALL_GROUP] + list(IMAGE_SETS.groups())),


# -- paths -------------------------------------------------------------------------------------------


def log_path(name):
    return f"{RUN}/logs/{name}.log"


def benchmark_path(name):
    return f"{RUN}/benchmarks/{name}.tsv"


def world_store(split):
    """An embedded world's clean source (train) or target (test) split."""
    return f"{RUN}/data/{WORLD}/{split}.zarr"


def source_images():
    """The real source images (the LoRA-on-source control of a vlm learns from them): an embedded world's
    clean source split."""
    if not EMBEDDED:
        raise WorkflowError("the LoRA-on-source control needs source images: not read for world imagenet yet")
    return [world_store("train")]


def denoiser_weights(role):
    """embedded worlds: trained by the workflow; imagenet: the official weights named in the config."""
    if EMBEDDED:
        return f"{RUN}/models/{role}.safetensors"
    return config["denoisers"][role]["checkpoint"]


def source_weights(arch):
    """embedded worlds: trained by the workflow; imagenet: the published weights, imported
    (rules/imagenet.smk), the same for every seed."""
    return f"{RUN if EMBEDDED else RESULTS}/models/source/{arch}.safetensors"


def released_finetuned_weights(arch):
    """A released f' (architectures[].finetuned_weights), imported like a source model, the same for every seed."""
    return f"{RESULTS}/models/released-finetuned/{arch}.safetensors"


def classifier_weights(model, arch):
    """f (image_sets.SOURCE), f' (image_sets.FINETUNED; a released one where configured) or a study variant of f'."""
    if model == image_sets.SOURCE:
        return source_weights(arch)
    if model == image_sets.FINETUNED and ARCHS.get(arch, {}).get("finetuned_weights"):  # not for "{arch}"
        return released_finetuned_weights(arch)
    return f"{RUN}/models/{model}/{arch}.safetensors"


def generated_store(shard):
    return f"{RUN}/synthetic/generated/shard-{shard}.zarr"


def mod_store(shard, t=None):
    """The MoD set; with t, MoD made from timestep t (the matched-alignment study)."""
    return f"{RUN}/synthetic/mod{'' if t is None else f'-t{t}'}/shard-{shard}.zarr"


def target_store(corruption):
    """A target set's store: a corruption, or the clean images."""
    if corruption == image_sets.CLEAN and EMBEDDED:
        return world_store("test")
    return f"{RUN if target_uses_seed(corruption) else RESULTS}/target/{corruption}.zarr"


def target_uses_seed(corruption):
    """Whether a target set depends on the seed: always on digits; on ImageNet when the import draws a
    class-balanced subset (the clean set, imagenet.images_per_class) or corrupts val itself. Apart from
    the clean set the answer must not depend on the name: rule import_images spells its output with the
    "{corruption}" wildcard (named targets of an imagenet_val run are therefore kept per seed too)."""
    if EMBEDDED or corruption == image_sets.CLEAN:
        return True
    return config["imagenet"]["images_per_class"] is not None or config["imagenet"]["target"] == "imagenet_val"


def subset_file(images):
    """imagenet.subset_file, for every target set but the clean one (clean_images_per_class picks that)."""
    return None if images == image_sets.CLEAN else config["imagenet"]["subset_file"]


def subset_inputs(wildcards):
    """The subset file an import of a target set reads, as a rule input (none without one)."""
    path = subset_file(wildcards.corruption)
    return [] if path is None else [path]


def image_manifest(corruption):
    """imagenet: the file list (names, sizes) of the folder a target set is imported from."""
    return f"{RESULTS}/manifests/{corruption}.tsv"


def adapted_store(process, corruption, shard):
    return f"{RUN}/adapted/{process}/{corruption}/shard-{shard}.zarr"


def imported_adapted_store(corruption):
    """imagenet: the pre-adapted DDA copy of a target set (imagenet.adapted_root, targets[].adapted_root)."""
    return f"{RUN if target_uses_seed(corruption) else RESULTS}/adapted/dda-imported/{corruption}.zarr"


def is_pre_adapted(corruption):
    return WORLD == "imagenet" and adapted_folder(config, corruption) is not None


def prediction_file(arch, group):
    return f"{RUN}/predictions/{arch}/{group}.npz"


def per_image_store(method, arch, images, shard):
    """A per-image method's predictions (a prediction store) on one shard of a target set."""
    return f"{RUN}/{method}/{arch}/{images}/shard-{shard}.zarr"


def per_image_stores(method, arch, images):
    return [per_image_store(method, arch, images, k) for k in range(config[method]["shards"])]


def per_image_adapted_store(method, arch, images, shard):
    """A per-image method's adapted images (PerImageStage.stores_images: GDA's) of one shard of a target set."""
    return f"{RUN}/{method}-adapted/{arch}/{images}/shard-{shard}.zarr"


def per_image_adapted_stores(method, arch, images):
    return [per_image_adapted_store(method, arch, images, k) for k in range(config[method]["shards"])]


def per_image_adapted_groups():
    """The target sets whose adapted images (of a per-image stage that stores them) f' classifies in one
    job per architecture: each set on its own, or every one (target_jobs: grouped)."""
    return {image_sets.ALL_GROUP: PER_IMAGE_SETS} if GROUPED else {images: [images] for images in PER_IMAGE_SETS}


def per_image_adapted_models():
    """The models that classify the adapted images of the per-image stages that store them: f', and
    f'_GDA with the gda_aligned study."""
    return [image_sets.FINETUNED] + ([image_sets.finetuned(image_sets.GDA_ALIGNED)] if STUDIES.gda_aligned else [])


def per_image_adapted_predictions(method, arch, group):
    """f''s predictions of a group of a per-image stage's adapted sets (rules/per_image.smk)."""
    return f"{RUN}/{method}-adapted/{arch}/predictions/{group}.npz"


def per_image_adapted_sets(method, arch, group):
    """The adapted sets of a group (image_sets.per_image_adapted) -> their stores."""
    return {
        image_sets.per_image_adapted(method, images): per_image_adapted_stores(method, arch, images)
        for images in per_image_adapted_groups()[group]
    }


def table_file(name):
    return table_path(RESULTS, SEED, WORLD, name)


def provenance_file():
    """What produced the tables: commit, package versions, config (sda_core.provenance)."""
    return f"{RUN}/tables/{WORLD}_provenance.json"


def plot_file(name):
    return f"{RUN}/plots/{WORLD}_{name}.png"


def generated_stores():
    return [generated_store(k) for k in range(config["sampling"]["shards"])]


def mod_stores(t=None):
    return [mod_store(k, t) for k in range(config["adaptation"]["mod_shards"])]


def mod_timesteps():
    """The start timesteps of the MoD sets a run makes: None (the configured one), then those of the
    matched-alignment study (studies.timesteps.matched_mod)."""
    found = {STUDIES.mod_timestep(model) for model in STUDIES.finetuned_models()} - {None}
    return [None, *sorted(found)]


def mod_set(t):
    """A MoD set's adaptation, as the adapt jobs' `sets` param: the generated stores under DDA from timestep t."""
    process = "dda" if t is None else image_sets.swept("dda", int(t))
    stream = "mod" if t is None else f"mod-t{t}"
    return {"inputs": generated_stores(), "process": process_settings(process), "stream": stream}


def mod_outputs():
    """What a MoD job makes: a shard of the configured start's set, or of every start's (grouped)."""
    return [directory(mod_store("{shard}", t)) for t in (mod_timesteps() if GROUPED else [None])]


def mod_job_timesteps(wildcards):
    """A MoD job's timesteps: its own (the `t` wildcard; none: the configured one), or every one (grouped)."""
    return mod_timesteps() if GROUPED else [getattr(wildcards, "t", None)]


def adapted_stores(process, corruption):
    """A reverse process's shards on a target set; the DDA set of a pre-adapted target is its import."""
    if process == "dda" and is_pre_adapted(corruption):
        return [imported_adapted_store(corruption)]
    return [adapted_store(process, corruption, k) for k in range(config["adaptation"]["shards"])]


# -- image sets and what each job reads ----------------------------------------------------------------


def corrupt_outputs():
    """What a corrupt job makes (embedded worlds): a corruption's target store, or every one's (grouped)."""
    return [directory(target_store(c)) for c in (CORRUPTIONS if GROUPED else ["{corruption}"])]


def adapted_pairs():
    """(process, target set) of every adaptation the run makes itself (not the imported DDA sets)."""
    return [
        (process, images)
        for process, sets in IMAGE_SETS.processed().items()
        for images in sets
        if not (process == "dda" and is_pre_adapted(images))
    ]


def adapt_outputs():
    """What an adapt job makes: one set's shard, or every adapted set's (grouped)."""
    if GROUPED:
        return [directory(adapted_store(process, images, "{shard}")) for process, images in adapted_pairs()]
    return [directory(adapted_store("{process}", "{corruption}", "{shard}"))]


def adapt_job_pairs(wildcards):
    return adapted_pairs() if GROUPED else [(wildcards.process, wildcards.corruption)]


def adapt_inputs(wildcards):
    """The target stores an adapt job reads."""
    return list(dict.fromkeys(target_store(images) for _, images in adapt_job_pairs(wildcards)))


def adapt_sets(wildcards):
    """An adapt job's sets, in the order of its outputs: input stores, process settings, noise stream."""
    return [
        {
            "inputs": [target_store(images)],
            "process": process_settings(process),
            "stream": image_sets.adapted(process, images),
        }
        for process, images in adapt_job_pairs(wildcards)
    ]


def process_settings(process):
    """A reverse process's settings as rule params (sda_core.processes decides them)."""
    return reverse_process(process, config["adaptation"], config["diffpure"]).as_params()


def image_set_stores():
    """Every image set a classifier is scored on (sda_core.image_sets names) -> its stores."""
    return IMAGE_SETS.stores(generated_stores, mod_stores, target_store, adapted_stores)


def prediction_groups():
    """The image sets classified together, one predict job per group and architecture. per_corruption:
    each corruption's target and adapted sets (what its ensembles combine), clean with its adaptations,
    the synthetic sets; per_architecture: everything in one job, for small worlds."""
    if config["predict"]["jobs"] == "per_architecture":
        return {image_sets.ALL_GROUP: IMAGE_SETS.names()}
    return IMAGE_SETS.groups()


def finetune_outputs(kind="timm"):
    """What a fine-tuning job makes: a model of an architecture, or every fine-tuned one of an
    architecture of `kind` (grouped: one rule per kind, rules/finetune.smk)."""
    if not GROUPED:
        return [classifier_weights("{model}", "{arch}")]
    return [classifier_weights(model, "{arch}") for model in KINDS[kind].finetuned_models(STUDIES.finetuned_models())]


def finetune_job_models(wildcards):
    """A fine-tuning job's models: its own (the `model` wildcard), or every fine-tuned model of its
    architecture (grouped)."""
    return arch_models(wildcards.arch) if GROUPED else [wildcards.model]


def finetune_data(model, arch):
    """The stores a fine-tuned model of an architecture learns from: the generated set for f_c', MoD from
    its timestep for f'_t, the architecture's GDA-made MoD for f'_GDA, else the MoD set (a subset of it
    for the set-size study: STUDIES.subset_sizes)."""
    if model == image_sets.finetuned(image_sets.GENERATED_ONLY):
        return generated_stores()
    if model == image_sets.finetuned(image_sets.GDA_ALIGNED):
        return per_image_adapted_stores(image_sets.GDA, arch, GDA_MOD_FOLDER)
    if model == image_sets.LORA_ON_SOURCE:
        return source_images()
    return mod_stores(STUDIES.mod_timestep(model))


def prediction_weights(arch, group):
    """model -> weights file, for every model that scores a set of the group."""
    models = {model for name in prediction_groups()[group] for model in scoring_models(arch, name)}
    return {model: classifier_weights(model, arch) for model in sorted(models)}


def prediction_files():
    """arch -> image set -> the prediction file holding it; and each per-image method's predictions key of
    each target set -> its prediction stores (sda_core.scoring.predictions.PredictionReader reads both)."""
    group_of = {name: group for group, names in prediction_groups().items() for name in names}
    files = {arch: {name: prediction_file(arch, group) for name, group in group_of.items()} for arch in ARCHS}
    for method, archs in PER_IMAGE_ARCHS.items():
        for arch in archs:
            files[arch].update(
                {
                    image_sets.predictions_key(method, image_sets.target(c)): per_image_stores(method, arch, c)
                    for c in PER_IMAGE_SETS
                }
            )
            if PER_IMAGE_STAGES[method].stores_images:
                files[arch].update(
                    {
                        name: per_image_adapted_predictions(method, arch, group)
                        for group in per_image_adapted_groups()
                        for name in per_image_adapted_sets(method, arch, group)
                    }
                )
    return files


def prediction_files_of(keep):
    """prediction_files() of the image sets whose target set (the key's last part) `keep` accepts."""
    return {
        arch: {key: paths for key, paths in files.items() if keep(key.split("/")[-1])}
        for arch, files in prediction_files().items()
    }


def corruption_prediction_files():
    """prediction_files() without the named targets' sets (the corruptions' tables never read them)."""
    return prediction_files_of(lambda images: images not in TARGETS)


def target_prediction_files(target):
    """prediction_files() of the image sets of one named target only (what its tables read)."""
    return prediction_files_of(lambda images: images == target)


def prediction_inputs(files):
    """Every file or store a prediction_files() mapping names (its values: a path, or a list of them)."""
    return sorted({path for paths in files.values() for path in ([paths] if isinstance(paths, str) else paths)})


def job_sets(wildcards, every):
    """The sets a job of a per-target-set stage makes: its own (the `corruption` wildcard), or `every` one
    of the stage's (target_jobs: grouped)."""
    return list(every) if GROUPED else [wildcards.corruption]


def job_folder(per_set):
    """The part of a per-target-set stage's log and benchmark paths that names its job's sets."""
    return "all" if GROUPED else per_set


def per_image_outputs(method):
    """What a per-image method's job makes: its target set's predictions, or every set's (grouped), one
    shard; and their adapted images where the stage stores them."""
    sets = PER_IMAGE_SETS if GROUPED else ["{corruption}"]
    outputs = {"predictions": [directory(per_image_store(method, "{arch}", images, "{shard}")) for images in sets]}
    if PER_IMAGE_STAGES[method].stores_images:
        outputs["images"] = [directory(per_image_adapted_store(method, "{arch}", images, "{shard}")) for images in sets]
    return outputs


def per_image_inputs(method, images=None):
    """What a per-image method's jobs read (the input function of its rule): the target sets' images (or
    the stores `images`: the generated set of the gda_aligned study), the architecture's source
    classifier, the unconditional denoiser where the method runs it, and the config files it names (GDA:
    VGG-19 and CLIP where their terms are on)."""
    stage = PER_IMAGE_STAGES[method]

    def inputs(wildcards):
        found = {
            "images": images or [target_store(c) for c in job_sets(wildcards, PER_IMAGE_SETS)],
            "classifier": source_weights(wildcards.arch),
        }
        if stage.reads_denoiser:
            found["checkpoint"] = denoiser_weights("unconditional")
        return found | stage.files(config)

    return inputs


def per_image_settings(method):
    """A per-image method's settings for an architecture (a rule param function; PerImageStage.settings)."""
    return lambda wildcards: PER_IMAGE_STAGES[method].settings(config, ARCHS[wildcards.arch])


def per_image_targets(method):
    """A per-image job's target sets, in the order of its outputs: each one's input stores and noise
    stream (a rule param function)."""
    return lambda wildcards: [
        {"inputs": [target_store(c)], "stream": f"{method}/{c}"} for c in job_sets(wildcards, PER_IMAGE_SETS)
    ]


def per_image_params(method, targets, images):
    """A per-image rule's params (workflow_scripts/per_image.py): targets, a per_image_targets function;
    images: how many of each set's images it covers (None: all)."""
    return {
        "stage": method,
        "model": lambda wildcards: task_model(wildcards.arch),
        "num_classes": NUM_CLASSES,
        "settings": per_image_settings(method),
        "preprocess": config["classifier_input"],
        "images": images,
        "batch_size": config[method]["batch_size"],
        "num_shards": config[method]["shards"],
        "targets": targets,
        "seed": SEED,
        "device": job_device(uses_gpu=True),
    }


# The gda_aligned study's MoD set: the generated images as GDA adapts them under each architecture's f
# (sda_core.studies), in the folders of GDA's own stores.
GDA_MOD_FOLDER = "synthetic-mod"


def gda_mod_outputs():
    """What a job of the gda_aligned study's MoD makes: one shard of an architecture's set, with f's
    predictions of it (GDA's job writes both)."""
    return {
        "predictions": [directory(per_image_store(image_sets.GDA, "{arch}", GDA_MOD_FOLDER, "{shard}"))],
        "images": [directory(per_image_adapted_store(image_sets.GDA, "{arch}", GDA_MOD_FOLDER, "{shard}"))],
    }


def gda_mod_targets(wildcards):
    """The gda_aligned study's MoD job's one target set: every generated image, its own noise stream."""
    return [{"inputs": generated_stores(), "stream": f"{image_sets.GDA}/{image_sets.SYNTHETIC_MOD}"}]


def preview_rows():
    """Rows of the preview grid (the task's: name -> (kind, stores, method)), the first two test corruptions."""
    return TASK.preview_rows(image_set_stores(), TEST_CORRUPTIONS[:2], IMAGE_SETS)


def preview_prediction_files():
    """The prediction files the preview's predicted rows read (the first architecture's); none without such rows."""
    if not any(kind == "predicted" for kind, _, _ in preview_rows().values()):
        return {}
    return prediction_files()[list(ARCHS)[0]]


def score_outputs():
    """The score rule's outputs, each shown in the HTML report with its caption (report/, the task's)."""
    outputs = {
        name: (path, TASK.captions[name])
        for name, path in (
            ("table", table_file("c")),
            ("paired", table_file("c_paired")),
            ("sanity", table_file("sanity")),
            ("plot", plot_file("c")),
        )
    }
    outputs["provenance"] = (provenance_file(), "provenance.rst")
    if STUDIES.fusions:
        outputs["fusion"] = (table_file("fusion"), "fusion.rst")
    return {
        name: report(path, caption=f"../report/{caption}", category="Results")
        for name, (path, caption) in outputs.items()
    }


def timestep_sets():
    """The clean sets of the timestep study, each level's (t, process, image set, models)."""
    return [
        (level.t, base, image_sets.adapted(level.process(base), image_sets.CLEAN), level.matched_model)
        for level in STUDIES.sweep
        for base in image_sets.SWEPT_PROCESSES
    ]


def timestep_prediction_files():
    """arch -> the clean set and the timestep study's sets -> their prediction files (the architectures
    that score the study's sets: not a vlm)."""
    if not STUDIES.sweep:
        return {}  # no clean set, no study (ImageNet without val_root)
    names = [image_sets.CLEAN] + [name for _, _, name, _ in timestep_sets()]
    return {
        arch: {name: files[name] for name in names}
        for arch, files in prediction_files().items()
        if all(scoring_models(arch, name) for name in names)
    }


RESULT_FILES = [
    table_file("c"),
    table_file("c_paired"),
    table_file("sanity"),
    table_file("gates"),
    provenance_file(),
    plot_file("c"),
]
RESULT_FILES.append(plot_file("preview"))
if "claims" in TASK.supports:
    RESULT_FILES.append(table_file("claims"))
if STUDIES.fusions:
    RESULT_FILES.append(table_file("fusion"))
RESULT_FILES += [table_file(name) for target in TARGETS for name in (target, f"{target}_paired")]
if STUDIES.sweep:
    RESULT_FILES += [table_file("timesteps"), table_file("timesteps_gain"), plot_file("timesteps")]


def generated_label_maps():
    """The sampling rule's label_maps param: the maps the world's generator draws the synthetic set for
    (sda_core.worlds.generated_maps); no param at all where it draws for classes, so that a
    classification run's params, and so its finished samples, stay as they were."""
    maps = generated_maps(config, SEED)
    return {} if maps is None else {"label_maps": maps}


def score_settings():
    """The score rule's settings (every task's score interface: sda_core.tasks.base.Task.score_tables)."""
    return {
        "test": TEST_CORRUPTIONS,
        "validation": VALIDATION_CORRUPTIONS,
        "severity": config["corruptions"]["severity"],
        "title": f"{WORLD}-C, severity {config['corruptions']['severity']}",
        "num_classes": NUM_CLASSES,
        "seed": SEED,
        "has_clean": HAS_CLEAN,
        "variants": STUDIES.variants,
        "fusions": STUDIES.fusions,
        "per_image": PER_IMAGE_ARCHS,
        "processes": TARGET_PROCESSES,
        "synthetic": SYNTHETIC,
        "studies": SCORED_ROWS,
        "models": ARCH_MODELS,
        "questions": {arch: KINDS_OF[arch].side_questions(ARCHS[arch], config) for arch in ARCHS},
    }


def generator_weights(wildcards):
    """The generator's weights (a file, or a diffusers DiT directory) and, for a latent-space one, its VAE."""
    from sda_core.models.specs import is_latent
    from sda_core.external_inputs import vae_directory

    weights = {"checkpoint": denoiser_weights("generator")}
    generator = config["denoisers"]["generator"]
    vae = vae_directory(generator["checkpoint"], generator["vae"])
    if is_latent(DENOISER_SPECS["generator"]) and vae is not None:
        weights["vae"] = vae
    return weights
