"""What each method costs per test image, from a finished run: the passes it makes (from the config)
and the seconds its jobs took per image (from the run's Snakemake `benchmark:` files), written to
benchmarks/results/<date>_method_costs_<hardware>.csv (docs/running-at-scale.md's "Cost per method" table).

    python benchmarks/method_costs.py --configfile presets/digits.yaml   # after `make demo`

Seconds are whole jobs (start-up included, about 5 s each here) over the images they made; SDA's
per-image cost is DDA's adaptation plus one more classifier pass, and it pays once per run for the
generated set, its MoD and the fine-tuning (listed apart).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml
from record import write_results

from sda_core.gda import GdaSettings
from sda_core.processes import reverse_process
from sda_core.store import open_store


def job_seconds(benchmarks: Path, pattern: str) -> dict[Path, float]:
    """benchmark file -> the job's wall seconds, for the files matching `pattern` under `benchmarks`."""
    seconds = {}
    for path in sorted(benchmarks.glob(pattern)):
        with path.open() as file:
            seconds[path] = float(next(csv.DictReader(file, delimiter="\t"))["s"])
    return seconds


def per_image(results: Path, pattern: str, store_of) -> tuple[float, int]:
    """Seconds per image of the jobs matching `pattern`, each job's images counted in its output store."""
    total, images = 0.0, 0
    for path, seconds in job_seconds(results / "benchmarks", pattern).items():
        total += seconds
        images += len(open_store(store_of(path.relative_to(results / "benchmarks").with_suffix(""))))
    return (total / images if images else float("nan")), images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=Path("presets/digits.yaml"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    config = yaml.safe_load(args.configfile.read_text())
    adaptation = {"respacing": 100, "steps": 50, "noise_index": "reference", "guidance": {}, **config["adaptation"]}
    diffpure = {"respacing": 100, "t": 150, **config.get("diffpure", {})}
    dda_steps = reverse_process("dda", adaptation, diffpure).steps
    diffpure_steps = reverse_process("diffpure", adaptation, diffpure).steps
    views = config.get("memo", {}).get("views", 64)
    defaults = asdict(GdaSettings())
    gda = {**defaults, **{k: v for k, v in config.get("gda", {}).items() if k in defaults}}
    results = args.results
    archs = [arch["name"] for arch in config["architectures"]]

    def adapted(path: Path) -> Path:  # adapt/<process>/<set>/<shard> -> its store
        _, process, images, shard = path.parts
        return results / "adapted" / process / images / f"shard-{shard}.zarr"

    def prediction_store(path: Path) -> Path:  # memo|gda/<arch>/<set>/<shard>
        stage, arch, images, shard = path.parts
        return results / stage / arch / images / f"shard-{shard}.zarr"

    corruptions = [p.name for p in sorted((results / "target").glob("*.zarr"))]
    dda_seconds, dda_images = 0.0, 0
    diffpure_seconds, diffpure_images = 0.0, 0
    for corruption in (c.removesuffix(".zarr") for c in corruptions):
        s, n = per_image(results, f"adapt/dda/{corruption}/*.tsv", adapted)
        dda_seconds, dda_images = dda_seconds + s * n, dda_images + n
        s, n = per_image(results, f"adapt/diffpure/{corruption}/*.tsv", adapted)
        diffpure_seconds, diffpure_images = diffpure_seconds + s * n, diffpure_images + n
    forward = {}  # arch -> seconds per classifier forward of one image, over its predict jobs
    for arch in archs:
        seconds = sum(job_seconds(results / "benchmarks", f"predict/{arch}/*.tsv").values())
        rows_predicted = 0
        for npz in (results / "predictions" / arch).glob("*.npz"):
            with np.load(npz) as arrays:
                rows_predicted += sum(len(arrays[k]) for k in arrays.files if not k.startswith("labels/"))
        forward[arch] = seconds / rows_predicted
    memo_seconds, memo_images = defaultdict(float), defaultdict(int)
    gda_seconds, gda_images = defaultdict(float), defaultdict(int)
    for arch in archs:
        memo_seconds[arch], memo_images[arch] = per_image(results, f"memo/{arch}/*/*.tsv", prediction_store)
        gda_seconds[arch], gda_images[arch] = per_image(results, f"gda/{arch}/*/*.tsv", prediction_store)
    once = {
        name: sum(job_seconds(results / "benchmarks", pattern).values())
        for name, pattern in (
            ("sampling", "sample_synthetic/*.tsv"),
            ("MoD", "mod/*.tsv"),
            ("fine-tuning f'", "finetune/finetuned/*.tsv"),
        )
    }
    unet = f"{dda_steps} UNet forward + {dda_steps} input-gradient backward"
    rows = [
        *(
            {
                "method": "Source",
                "passes": "1 classifier forward (seconds: the predict jobs over every image and model they ran)",
                "arch": arch,
                "seconds_per_image": round(forward[arch], 5),
                "images": "",
            }
            for arch in archs
        ),
        *(
            {
                "method": "MEMO",
                "passes": f"{views} classifier forward + {views} backward, then 1 forward",
                "arch": arch,
                "seconds_per_image": round(memo_seconds[arch], 3),
                "images": memo_images[arch],
            }
            for arch in archs
        ),
        {
            "method": "DiffPure",
            "passes": f"{diffpure_steps} UNet forward, 1 classifier forward",
            "arch": "(any)",
            "seconds_per_image": round(diffpure_seconds / diffpure_images, 3),
            "images": diffpure_images,
        },
        *(
            {
                "method": "GDA",
                "passes": f"{gda['steps'] - 1} UNet forward + input-gradient backward through the loss "
                f"({gda['views']} AugMix views through the classifier"
                + (", VGG-19" if gda["vgg_weight"] else "")
                + (f", CLIP on {gda['clip_cutouts']} cut-outs" if gda["clip_weight"] else "")
                + "), then 1 UNet forward and 2 classifier forward",
                "arch": arch,
                "seconds_per_image": round(gda_seconds[arch], 3),
                "images": gda_images[arch],
            }
            for arch in archs
            if gda_images[arch]
        ),
        {
            "method": "DDA",
            "passes": f"{unet}, 2 classifier forward",
            "arch": "(any)",
            "seconds_per_image": round(dda_seconds / dda_images, 3),
            "images": dda_images,
        },
        {
            "method": "SDA",
            "passes": f"DDA's adaptation ({unet}), 2 classifier forward; once per run: "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in once.items()),
            "arch": "(any)",
            "seconds_per_image": round(dda_seconds / dda_images, 3),
            "images": dda_images,
        },
    ]
    print(f"{'method':10s}{'arch':16s}{'s/image':>9s}{'images':>8s}  passes per image")
    for row in rows:
        print(
            f"{row['method']:10s}{row['arch']:16s}{row['seconds_per_image']!s:>9s}{row['images']!s:>8s}",
            row["passes"],
        )
    write_results("method_costs", rows)


if __name__ == "__main__":
    main()
