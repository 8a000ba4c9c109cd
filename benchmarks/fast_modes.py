"""The fast modes of the adaptation against their cost, on the digits world's validation corruptions only.

Each mode is a setting of `adaptation` (fewer respaced steps from the nearest start t, guidance on every
k-th step, the diagonal-Jacobian guidance, a guidance scale) applied as the config applies it: to MoD
and to DDA. For each mode this script re-runs, in-process with the workflow's own job functions and one
thread (as the demo's jobs): MoD of the run's generated set, the fine-tuning of f' for each architecture,
DDA of each validation corruption, and the predictions of f and f'. It scores DDA (f on raw + f on
adapted) and SDA (f on raw + f' on adapted), their mean top-1 over the validation corruptions and both
architectures, and each mode's paired difference from the reference mode (95% intervals over images).

Cost is in UNet forward-equivalents per image: a guided step through the UNet is a forward and a
backward (3), a diagonal-Jacobian or unguided step a forward (1). The reference mode re-runs the demo's
own DDA, so its images must equal the run's bitwise (checked; CPU, one thread).

    make demo && python benchmarks/fast_modes.py --results results
    python benchmarks/fast_modes.py --results results --seeds 0 1    # the adaptation noise of two seeds

Writes benchmarks/results/<date>_fast_modes_<hardware>.csv (one row per mode and seed). The test
corruptions are never read. `--table CSV` prints docs/speed.md's table of such a file (means over its
seeds, and each seed's paired difference from the reference mode).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from record import write_results
from snakemake.utils import validate

from sda_core import image_sets
from sda_core.diffusion.respacing import nearest_level, noise_level, space_timesteps
from sda_core.ensemble import method_correct, paired_difference
from sda_core.jobs.adapt import adapt_job
from sda_core.jobs.predict import predict_job
from sda_core.jobs.train_model import train_model_job
from sda_core.methods import METHODS
from sda_core.processes import ReverseProcess, reverse_process
from sda_core.store import StoreSequence
from sda_core.studies import steps_for_level

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Mode:
    name: str
    respacing_fraction: float = 1.0  # of the configured respacing, started from the nearest level to its t
    every: int = 1
    jacobian: str = "full"
    scale_factor: float = 1.0


MODES = [
    Mode("reference"),
    Mode("every-2", every=2),
    Mode("every-2, scale x2", every=2, scale_factor=2.0),
    Mode("every-3, scale x3", every=3, scale_factor=3.0),
    Mode("half the steps", respacing_fraction=0.5),
    Mode("a third of the steps", respacing_fraction=1 / 3),
    Mode("diagonal", jacobian="diagonal"),
    Mode("diagonal, scale x2", jacobian="diagonal", scale_factor=2.0),
    Mode("diagonal, half the steps", respacing_fraction=0.5, jacobian="diagonal"),
]


def mode_process(mode: Mode, adaptation: dict) -> ReverseProcess:
    """The mode's reverse process: the configured DDA process with the mode's changes; fewer respaced
    steps start from the level whose timestep is nearest to the configured start t."""
    reference = reverse_process("dda", adaptation, {"respacing": 2, "t": 1})
    respacing = max(2, round(reference.respacing * mode.respacing_fraction))
    start_t = space_timesteps(1000, reference.respacing)[noise_level(reference.steps, reference.noise_index)]
    level = nearest_level(respacing, start_t, lowest=1)
    guidance = dict(reference.guidance)
    guidance.update(every=mode.every, jacobian=mode.jacobian, scale=guidance["scale"] * mode.scale_factor)
    return ReverseProcess(respacing, steps_for_level(level, reference.noise_index), reference.noise_index, guidance)


def forward_equivalents(process: ReverseProcess) -> int:
    """UNet forward-equivalents per image of the process's denoising steps."""
    guided = math.ceil(process.steps / process.guidance["every"]) if process.guidance["scale"] else 0
    per_guided = 3 if process.guidance["jacobian"] == "full" else 1
    return guided * per_guided + (process.steps - guided)


def load_config(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    if config["world"] != "digits":
        raise SystemExit("this study runs on the digits world (presets/digits.yaml)")
    return config


def run_mode(mode: Mode, config: dict, results: Path, work: Path, seed: int) -> dict:
    """Correct-prediction arrays of DDA and SDA per architecture and validation corruption, and timings.
    The models and target sets are the run's (its config seed); `seed` seeds the adaptation noise and the
    fine-tuning."""
    adaptation = config["adaptation"]
    process = mode_process(mode, adaptation)
    spec = config["denoisers"]["unconditional"]["spec"]
    unconditional = str(results / "models/unconditional.safetensors")
    batch = adaptation["batch_size"]

    def adapt(inputs, output, stream):
        adapt_job(inputs, str(output), spec, unconditional, process, batch, 0, 1, stream, seed, CPU)

    generated = sorted(str(p) for p in (results / "synthetic/generated").glob("shard-*.zarr"))
    start = time.perf_counter()
    mod = work / "mod.zarr"
    adapt(generated, mod, "mod")
    seconds = {"mod": time.perf_counter() - start}
    dda_seconds, dda_images, correct = 0.0, 0, {}
    for corruption in config["corruptions"]["validation"]:
        raw = str(results / "target" / f"{corruption}.zarr")
        start = time.perf_counter()
        adapt([raw], work / f"dda-{corruption}.zarr", image_sets.adapted("dda", corruption))
        dda_seconds += time.perf_counter() - start
        dda_images += len(StoreSequence([raw]))
    seconds["dda_per_image"] = dda_seconds / dda_images
    for arch in config["architectures"]:
        model = {"timm_name": arch["timm_name"], "timm_kwargs": arch["timm_kwargs"]}
        source = str(results / "models/source" / f"{arch['name']}.safetensors")
        finetuned = work / f"finetuned-{arch['name']}.safetensors"
        start = time.perf_counter()
        train_model_job(
            [str(mod)], str(finetuned), **model, num_classes=10, settings=arch["finetune"],
            preprocess=config["classifier_input"], seed=seed, device=CPU, init_weights=source,
        )  # fmt: skip
        seconds[f"finetune_{arch['name']}"] = time.perf_counter() - start
        sets, models = {}, {}
        for corruption in config["corruptions"]["validation"]:
            raw, adapted = image_sets.target(corruption), image_sets.adapted("dda", corruption)
            sets[raw] = [str(results / "target" / f"{corruption}.zarr")]
            sets[adapted] = [str(work / f"dda-{corruption}.zarr")]
            models[raw], models[adapted] = [image_sets.SOURCE], [image_sets.SOURCE, image_sets.FINETUNED]
        out = work / f"predictions-{arch['name']}.npz"
        weights = {image_sets.SOURCE: source, image_sets.FINETUNED: str(finetuned)}
        predict_job(sets, str(out), **model, num_classes=10, weights=weights, models=models,
                    preprocess=config["classifier_input"], device=CPU)  # fmt: skip
        predictions = dict(np.load(out))
        for method in ("DDA", "SDA"):
            correct[method, arch["name"]] = [
                method_correct(predictions, METHODS[method], corruption)
                for corruption in config["corruptions"]["validation"]
            ]
    return {"process": process, "correct": correct, "seconds": seconds}


def reproduces_the_run(config: dict, results: Path, work: Path) -> bool:
    """The reference mode's DDA images equal the run's own, bitwise."""
    for corruption in config["corruptions"]["validation"]:
        ours = StoreSequence([work / f"dda-{corruption}.zarr"])
        runs = StoreSequence(sorted((results / "adapted/dda" / corruption).glob("shard-*.zarr")))
        if not np.array_equal(ours.read(0, len(ours))[0], runs.read(0, len(runs))[0]):
            return False
    return True


def markdown_table(path: Path) -> str:
    """docs/speed.md's table of a CSV written by this script: means over its seeds, each seed's paired
    difference from the reference mode, and the Pareto front of the means (no cheaper or equally cheap
    mode has a higher mean SDA)."""
    import pandas as pd

    rows = pd.read_csv(path)
    seeds = sorted(rows.seed.unique())
    means = rows.groupby("mode", sort=False).agg(
        cost=("forward_equivalents", "first"),
        share=("cost_vs_reference", "first"),
        dda=("DDA_mean", "mean"),
        sda=("SDA_mean", "mean"),
        difference=("SDA_vs_reference", "mean"),
    )
    lines = [
        "| mode | UNet forward-equivalents per image (share of the reference's) | DDA mean top-1 | SDA mean top-1 "
        f"| SDA - reference: mean | seed {', '.join(map(str, seeds))} (95% paired interval) | Pareto |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in means.iterrows():
        group = rows[rows["mode"] == mode]
        differences = "; ".join(
            f"{r.SDA_vs_reference:+.1f} [{r.SDA_vs_reference_low:+.1f}, {r.SDA_vs_reference_high:+.1f}]"
            for r in group.itertuples()
        )
        front = not ((means.cost <= m.cost) & (means.sda > m.sda + 1e-9)).any()
        mean_difference = "-" if mode == "reference" else f"{m.difference:+.2f}"
        lines.append(
            f"| {mode} | {int(m.cost)} ({m.share:.2f}) | {m.dda:.2f} | {m.sda:.2f} | {mean_difference} "
            f"| {'-' if mode == 'reference' else differences} | {'yes' if front else 'no'} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="a finished digits run (make demo)")
    parser.add_argument("--configfile", type=Path, default=ROOT / "presets/digits.yaml")
    parser.add_argument("--modes", nargs="+", choices=[m.name for m in MODES], default=[m.name for m in MODES])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="adaptation and fine-tuning seeds")
    parser.add_argument("--table", type=Path, default=None, help="print docs/speed.md's table of this CSV and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(args.table))
        return
    torch.set_num_threads(1)
    config = load_config(args.configfile)
    modes = [m for m in MODES if m.name in args.modes or m.name == "reference"]
    rows = []
    for seed in args.seeds:
        outcomes = {}
        for mode in modes:
            with tempfile.TemporaryDirectory() as tmp:
                outcomes[mode.name] = run_mode(mode, config, args.results, Path(tmp), seed)
                if mode.name == "reference" and seed == config["seed"]:
                    same = reproduces_the_run(config, args.results, Path(tmp))
                    print(f"reference mode reproduces the run's DDA images bitwise: {same}")
                    if not same:
                        raise SystemExit("the reference mode does not reproduce the run: wrong --results or config?")
        reference = outcomes["reference"]
        reference_cost = forward_equivalents(reference["process"])
        for name, outcome in outcomes.items():
            process, correct = outcome["process"], outcome["correct"]
            row = {
                "mode": name,
                "seed": seed,
                "respacing": process.respacing,
                "steps": process.steps,
                "start_t": space_timesteps(1000, process.respacing)[noise_level(process.steps, process.noise_index)],
                "every": process.guidance["every"],
                "jacobian": process.guidance["jacobian"],
                "scale": process.guidance["scale"],
                "forward_equivalents": forward_equivalents(process),
                "cost_vs_reference": round(forward_equivalents(process) / reference_cost, 3),
                "dda_seconds_per_image": round(outcome["seconds"]["dda_per_image"], 5),
            }
            for method in ("DDA", "SDA"):
                mine = [c for arch in config["architectures"] for c in correct[method, arch["name"]]]
                theirs = [c for arch in config["architectures"] for c in reference["correct"][method, arch["name"]]]
                difference, low, high = paired_difference(mine, theirs)
                row[f"{method}_mean"] = round(100 * float(np.mean([c.mean() for c in mine])), 2)
                row[f"{method}_vs_reference"] = round(100 * difference, 2)
                row[f"{method}_vs_reference_low"] = round(100 * low, 2)
                row[f"{method}_vs_reference_high"] = round(100 * high, 2)
            rows.append(row)
            print(
                f"seed {seed} {name:26s} {row['forward_equivalents']:3d} fwd-eq ({row['cost_vs_reference']:.2f}): "
                f"DDA {row['DDA_mean']:5.1f} ({row['DDA_vs_reference']:+.1f} [{row['DDA_vs_reference_low']:+.1f}, "
                f"{row['DDA_vs_reference_high']:+.1f}]), SDA {row['SDA_mean']:5.1f} ({row['SDA_vs_reference']:+.1f} "
                f"[{row['SDA_vs_reference_low']:+.1f}, {row['SDA_vs_reference_high']:+.1f}])",
                flush=True,
            )
    for row in rows:  # Pareto: no other mode of the seed is at most as costly and better in SDA's mean
        row["pareto"] = not any(
            o["seed"] == row["seed"]
            and o["forward_equivalents"] <= row["forward_equivalents"]
            and o["SDA_mean"] > row["SDA_mean"]
            for o in rows
        )
    write_results("fast_modes", rows)


if __name__ == "__main__":
    main()
