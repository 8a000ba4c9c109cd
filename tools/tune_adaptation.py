"""Choose DDA's start step and guidance for an embedded world on its validation corruptions only.

The test corruptions are never read: the candidates run on the validation corruptions' target sets
of a finished run (`--run`, its seed folder), with that run's unconditional denoiser and source model,
through the workflow's own jobs (sda_core.jobs.adapt, sda_core.jobs.predict), in a scratch folder.
Each candidate is scored by DDA's ensemble (f on the raw image + f on the adapted image), by f on the
adapted image alone, and on the clean target set after adaptation (how much of the content survives).
SDA is not scored: its fine-tuned model depends on the same setting through MoD, so each candidate
would need its own MoD and fine-tuning.

    python tools/tune_adaptation.py --configfile presets/digit_scenes.yaml --run runs/digit_scenes/results \
        --steps 4 6 8 10 --scales 1 3 6 --downsamples 1 2 --output benchmarks/results/<date>-scenes-tuning.csv
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sda_core import image_sets  # noqa: E402
from sda_core.config_checks import config_problems, problems_message  # noqa: E402
from sda_core.diffusion.respacing import noise_level  # noqa: E402
from sda_core.diffusion.schedule import DiffusionSchedule  # noqa: E402
from sda_core.jobs.adapt import adapt_job  # noqa: E402
from sda_core.jobs.predict import predict_job  # noqa: E402
from sda_core.models.specs import resolve_spec  # noqa: E402
from sda_core.processes import reverse_process  # noqa: E402
from sda_core.seed_runs import seed_folder  # noqa: E402
from sda_core.worlds import is_embedded, num_classes, task_of  # noqa: E402

SOURCE = image_sets.SOURCE
DDA = "dda"  # the process (sda_core.processes)
ADAPTED_ONLY = "DDA (adapted only)"  # the method's name in the workflow's tables (sda_core.ensemble)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", required=True, help="the run's config (an embedded world)")
    parser.add_argument("--run", default="results", help="the run's results folder")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="start steps N to try")
    parser.add_argument("--scales", type=float, nargs="+", required=True, help="guidance scales to try")
    parser.add_argument("--downsamples", type=int, nargs="+", help="guidance low-pass factors (default: the config's)")
    parser.add_argument("--output", required=True, help="CSV written (long form)")
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.configfile).read_text())
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    problems = config_problems(config, num_classes(config))
    if problems:
        raise SystemExit(problems_message(problems))
    if not is_embedded(config["world"]):
        raise SystemExit("tune_adaptation.py tunes an embedded world, whose models the run trained")
    torch.set_num_threads(config["threads"])
    run = Path(seed_folder(args.run, config["seed"]))
    classes = num_classes(config)
    task = task_of(config["world"])
    spec = resolve_spec(config["denoisers"]["unconditional"]["spec"])
    denoiser = run / "models/unconditional.safetensors"
    sets = {name: [str(run / f"target/{name}.zarr")] for name in config["corruptions"]["validation"]}
    sets[image_sets.CLEAN] = [str(run / f"data/{config['world']}/test.zarr")]
    adaptation, guidance = config["adaptation"], config["adaptation"]["guidance"]
    device = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for steps, scale, downsample in itertools.product(
            args.steps, args.scales, args.downsamples or [guidance["downsample"]]
        ):
            candidate = {
                **adaptation,
                "steps": steps,
                "guidance": {**guidance, "scale": scale, "downsample": downsample},
            }
            process = reverse_process(DDA, candidate, config["diffpure"])
            t = DiffusionSchedule(respacing=process.respacing).timesteps[noise_level(steps, process.noise_index)]
            adapted = {}
            for name, stores in sets.items():
                out = f"{scratch}/N{steps}-s{scale}-d{downsample}-{name}.zarr"
                batch, seed = adaptation["batch_size"], config["seed"]
                # the workflow's stream (rules/adapt.smk): the same noise as its DDA set of these images
                stream = image_sets.adapted(DDA, name)
                adapt_job(stores, out, spec, str(denoiser), process, batch, 0, 1, stream, seed, device)
                adapted[name] = [out]
            for arch in config["architectures"]:
                predictions = f"{scratch}/{arch['name']}-N{steps}-s{scale}-d{downsample}.npz"
                both = {**{f"raw/{k}": v for k, v in sets.items()}, **{f"dda/{k}": v for k, v in adapted.items()}}
                predict_job(
                    both,
                    predictions,
                    arch["timm_name"],
                    arch.get("timm_kwargs") or {},
                    classes,
                    {SOURCE: str(run / f"models/source/{arch['name']}.safetensors")},
                    {name: [SOURCE] for name in both},
                    config["classifier_input"],
                    device,
                    task=task.name,
                    **task.model_params(arch),
                )
                with np.load(predictions) as arrays:
                    for name in sets:
                        raw = arrays[image_sets.predictions_key(SOURCE, f"raw/{name}")].astype(np.float32)
                        dda = arrays[image_sets.predictions_key(SOURCE, f"dda/{name}")].astype(np.float32)
                        labels = arrays[image_sets.labels_key(f"raw/{name}")]
                        methods = {"Source": raw, "DDA": raw + dda, ADAPTED_ONLY: dda}
                        for method, probabilities in methods.items():
                            value = task.score(probabilities, labels, classes)
                            rows.append(
                                {
                                    "architecture": arch["name"],
                                    "steps": steps,
                                    "t": int(t),
                                    "scale": scale,
                                    "downsample": downsample,
                                    "images": name,
                                    "method": method,
                                    "score": round(value, 2),
                                }
                            )
            table = pd.DataFrame(rows)
            current = table[
                (table.steps == steps)
                & (table.scale == scale)
                & (table.downsample == downsample)
                & (table.images != image_sets.CLEAN)
            ]
            print(
                f"N={steps} (t={t}) scale={scale} downsample={downsample}: validation mean "
                + ", ".join(f"{m} {v:.1f}" for m, v in current.groupby("method").score.mean().items()),
                flush=True,
            )
    table = pd.DataFrame(rows)
    table.insert(0, "date", datetime.date.today().isoformat())
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    summary = (
        table[table.images != image_sets.CLEAN]
        .groupby(["steps", "t", "scale", "downsample", "method"])
        .score.mean()
        .unstack("method")
        .round(1)
    )
    clean = table[(table.images == image_sets.CLEAN) & (table.method == ADAPTED_ONLY)]
    summary["clean after DDA"] = clean.set_index(["steps", "t", "scale", "downsample"]).score
    print("mean over the validation corruptions:")
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
