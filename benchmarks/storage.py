"""Measure each storage codec of sda_core.store on real photos: bytes per image, write and read
throughput, and the disk a full ImageNet run would need.

The photos are scikit-image's bundled natural colour photos (astronaut, chelsea, coffee, rocket),
cut into distinct 256x256 crops at several scales (every crop differs, so no codec can profit
from repeats across images), plus the same crops with ImageNet-C corruptions at severity 5: noise
compresses worst, blur and low contrast best. Sizes are the bytes of the image chunk files on disk.

    python benchmarks/storage.py                      # 16 crops per photo, 32 images per chunk
    python benchmarks/storage.py --crops 64 --chunk-size 256

The figures are also written to benchmarks/results/<date>_storage_<hardware>.csv.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from record import write_results
from skimage import data
from skimage.transform import resize

from sda_core.data.corruptions import corrupt_images
from sda_core.store import STORAGE_CODECS, open_store, write_store

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "fog", "contrast", "jpeg_compression")
SEVERITY = 5
SIZE = 256
IMAGES_PER_STORE = 50_000
# the full ImageNet run's stores as (what, how many, kind of image)
FULL_RUN_STORES = (
    ("ImageNet-C target: 15 test + 4 validation corruptions", 19, "corrupted"),
    ("DDA adapted: 19 corruptions + clean", 20, "adapted"),
    ("DiffPure adapted: 19 corruptions", 19, "adapted"),
    ("DiT samples", 1, "clean"),
    ("MoD samples", 1, "clean"),
)


def photo_crops(crops_per_photo: int, seed: int = 0) -> np.ndarray:
    """Distinct uint8 (N, 256, 256, 3) crops: each photo resized so its short side spans 256..480 px
    (ImageNet images are a few hundred pixels across), cut at a random place, half of them mirrored."""
    rng = np.random.default_rng(seed)
    crops = []
    for name in PHOTOS:
        photo = getattr(data, name)()
        height, width = photo.shape[:2]
        for short_side in np.linspace(SIZE, 480, crops_per_photo).round().astype(int):
            scale = short_side / min(height, width)
            resized = resize(photo, (round(height * scale), round(width * scale)), anti_aliasing=True)
            top = rng.integers(0, resized.shape[0] - SIZE + 1)
            left = rng.integers(0, resized.shape[1] - SIZE + 1)
            crop = (resized[top : top + SIZE, left : left + SIZE] * 255).round().astype(np.uint8)
            crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return np.stack(crops)


def chunk_bytes(store_path: Path, chunk: int) -> int:
    """Bytes on disk of one written chunk (a shard, for per-image codecs) of the image array."""
    return sum(f.stat().st_size for f in (store_path / "images" / "c" / str(chunk)).rglob("*") if f.is_file())


def measure(codec: str, image_sets: dict[str, np.ndarray], chunk_size: int, workdir: Path) -> dict:
    """Write all sets, one after the other, as one store; time writing it and reading it back, and
    size each set by its own chunks (every set fills whole chunks)."""
    images = np.concatenate(list(image_sets.values()))
    path = workdir / f"{codec}.zarr"
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # no progress bar
        write_store(path, images, np.zeros(len(images), np.int64), chunk_size, {}, codec=codec)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    open_store(path).read()
    read_s = time.perf_counter() - start
    bytes_per_image, first_chunk = {}, 0
    for set_name, set_images in image_sets.items():
        num_chunks = len(set_images) // chunk_size
        chunks = range(first_chunk, first_chunk + num_chunks)
        bytes_per_image[set_name] = sum(chunk_bytes(path, k) for k in chunks) / len(set_images)
        first_chunk += num_chunks
    return {"bytes": bytes_per_image, "write": len(images) / write_s, "read": len(images) / read_s}


def full_run_gb(bytes_per_image: dict[str, float]) -> float:
    """Disk (GB, 1e9 bytes) of FULL_RUN_STORES given the bytes per image of each kind of image."""
    return sum(stores * IMAGES_PER_STORE * bytes_per_image[kind] for _, stores, kind in FULL_RUN_STORES) / 1e9


def sizes(result: dict, adapted: str) -> dict[str, float]:
    """Bytes per image of each kind of stored image, adapted images sized as the clean or the corrupted."""
    corrupted = float(np.mean([result["bytes"][c] for c in CORRUPTIONS]))
    clean = result["bytes"]["clean"]
    return {"corrupted": corrupted, "clean": clean, "adapted": clean if adapted == "clean" else corrupted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=16, help="crops per photo (4 photos)")
    parser.add_argument("--chunk-size", type=int, default=32, help="images per written chunk")
    args = parser.parse_args()

    clean = photo_crops(args.crops)
    if len(clean) % args.chunk_size:  # a partial last chunk would be sized as a whole one
        parser.error(
            f"{len(clean)} crops ({len(PHOTOS)} photos x {args.crops}) do not fill whole chunks of {args.chunk_size}"
        )
    image_sets = {"clean": clean, **{c: corrupt_images(clean, c, SEVERITY, seed=0) for c in CORRUPTIONS}}
    with tempfile.TemporaryDirectory() as workdir:
        results = {codec: measure(codec, image_sets, args.chunk_size, Path(workdir)) for codec in STORAGE_CODECS}

    raw = SIZE * SIZE * 3
    print(
        f"{len(clean)} distinct {SIZE}x{SIZE}x3 crops of {', '.join(PHOTOS)}, each also corrupted at severity "
        f"{SEVERITY}; {args.chunk_size} images per chunk; raw image = {raw} bytes\n"
    )
    print("bytes per image, by image set")
    print(f"{'codec':12s}" + "".join(f"{name[:12]:>13s}" for name in image_sets))
    for codec, result in results.items():
        print(f"{codec:12s}" + "".join(f"{result['bytes'][name]:13,.0f}" for name in image_sets))

    num_stores = sum(stores for _, stores, _ in FULL_RUN_STORES)
    print(
        f"\nfull ImageNet run: {num_stores} stores x {IMAGES_PER_STORE:,} images = "
        f"{num_stores * IMAGES_PER_STORE:,} images:"
    )
    for what, stores, kind in FULL_RUN_STORES:
        print(f"  {stores:2d} x {what} ({kind})")
    print(
        "  corrupted images are sized as the mean of the corrupted sets, sampled ones as the clean photos;\n"
        "  adapted images (DDA and DiffPure output clean-looking diffusion samples) once as the clean photos\n"
        "  ('GB, adapted~clean') and once as the corrupted sets ('GB, adapted~corrupt')\n"
    )
    print(
        f"{'codec':12s}{'clean B/img':>13s}{'corrupt B/img':>15s}{'clean/raw':>11s}{'write img/s':>13s}"
        f"{'read img/s':>12s}{'GB, adapted~clean':>19s}{'GB, adapted~corrupt':>21s}"
    )
    for codec, result in results.items():
        clean_bytes = result["bytes"]["clean"]
        corrupted_bytes = float(np.mean([result["bytes"][c] for c in CORRUPTIONS]))
        print(
            f"{codec:12s}{clean_bytes:13,.0f}{corrupted_bytes:15,.0f}{100 * clean_bytes / raw:10.1f}%"
            f"{result['write']:13,.0f}{result['read']:12,.0f}"
            f"{full_run_gb(sizes(result, adapted='clean')):19,.1f}"
            f"{full_run_gb(sizes(result, adapted='corrupted')):21,.1f}"
        )
    write_results(
        "storage",
        [
            {
                "codec": codec,
                "images": len(clean),
                "chunk_size": args.chunk_size,
                "clean_bytes_per_image": round(result["bytes"]["clean"]),
                "corrupted_bytes_per_image": round(float(np.mean([result["bytes"][c] for c in CORRUPTIONS]))),
                "write_images_per_s": round(result["write"]),
                "read_images_per_s": round(result["read"]),
                "full_run_gb_adapted_as_clean": round(full_run_gb(sizes(result, adapted="clean")), 1),
                "full_run_gb_adapted_as_corrupted": round(full_run_gb(sizes(result, adapted="corrupted")), 1),
            }
            for codec, result in results.items()
        ],
    )
    print("\ncodecs:")
    for codec, description in STORAGE_CODECS.items():
        print(f"  {codec:12s}{description}")


if __name__ == "__main__":
    main()
